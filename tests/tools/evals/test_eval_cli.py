"""`vireo eval` never overwrites the committed tables unless asked, and says why a table is empty."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest

from vireo.tools.evals.harness import COMMITTED_RESULTS, available_evals, eval_module

pytestmark = pytest.mark.slow  # runs the vireo CLI as a subprocess


def vireo(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vireo.cli", *args], capture_output=True, text=True, timeout=600, cwd=cwd
    )


def test_a_limited_eval_writes_to_the_given_folder_not_the_committed_table(tmp_path):
    committed = COMMITTED_RESULTS / "classify.json"
    before = committed.read_bytes()
    done = vireo("eval", "classify", "--limit", "2", "--out", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    written = json.loads((tmp_path / "classify.json").read_text())
    assert written["dataset"]["subset"] == "first 2"
    assert committed.read_bytes() == before


def test_record_refuses_a_partial_run():
    done = vireo("eval", "classify", "--limit", "2", "--record")
    assert done.returncode != 0 and "partial result" in done.stderr


def test_the_table_outside_a_checkout_says_where_it_looked(tmp_path):
    done = vireo("eval", "all", "--out", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 1
    assert f"no eval results in {tmp_path}" in done.stderr


@pytest.mark.parametrize("name", available_evals())
def test_every_eval_takes_a_limit(name):
    """`vireo eval <app> --limit N` passes `limit` to every app's eval."""
    assert "limit" in inspect.signature(eval_module(name).evaluate).parameters
