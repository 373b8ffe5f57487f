"""The API's processes, `vireo worker-health` and the code sandbox import the platform's settings and the API
without torch or transformers: `import torch` alone is ~230 MB resident, and an API process serves no model
(measured: one API process with its model's tokenizer 350 MB while the registry imported torch and the length
check loaded transformers' tokenizer; 121 MB with neither)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import vireo

ROOT = Path(vireo.__file__).resolve().parents[1]


def modules_after(statement: str) -> dict[str, bool]:
    code = (
        f"import json, sys\n{statement}\nprint(json.dumps({{m: m in sys.modules for m in ('torch', 'transformers')}}))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_api_and_the_settings_import_without_torch():
    assert modules_after("import vireo.platform.api.app, vireo.platform.settings, vireo.platform.cli") == {
        "torch": False,
        "transformers": False,
    }


def test_the_registry_imports_without_torch():
    assert modules_after("from vireo.inference import registry, random_models")["torch"] is False
