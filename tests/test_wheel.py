"""The wheel the Docker image installs carries every file the package reads at run time."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds the wheel with pip

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_holds_every_package_file(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("vireo-*.whl")
    packed = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "vireo").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert expected - packed == set(), f"left out of the wheel: {sorted(expected - packed)[:20]}"
    assert any(name.startswith("vireo/tools/evals/data/") and name.endswith(".json") for name in packed)
