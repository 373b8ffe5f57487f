"""Code: answers are extracted from fences, run against tests in the sandbox; inputs are checked."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vireo.apps.base import AppInputError
from vireo.apps.code import CodeApp
from vireo.apps.code_extract import extract_code
from vireo.apps.sandbox import configure_sandbox

APP = CodeApp()


async def test_generated_code_is_run_against_the_given_tests(run_app):
    out, ctx = await run_app(
        APP,
        {
            "task": "complete",
            "code": 'def add(a, b):\n    """Return a + b."""\n',
            "tests": "assert add(2, 3) == 5\nprint('tests ran')",
            "entry_point": "add",
            "execute": True,
        },
        max_tokens=48,
    )
    assert out.code and "def add" in out.code
    assert out.execution is not None and out.execution.exit_code is not None
    assert out.execution.passed == ("tests ran" in out.execution.stdout)
    assert "".join(ctx.emitted).startswith("```python")


async def test_without_a_sandbox_the_job_fails_saying_how_to_fix_it(run_app):
    configure_sandbox("auto", bwrap="/nonexistent/bwrap")
    try:
        with pytest.raises(AppInputError, match="install bubblewrap .*VIREO_SANDBOX=remote"):
            await run_app(
                APP,
                {"task": "complete", "code": "def one():\n", "tests": "assert one() == 1", "execute": True},
                max_tokens=16,
            )
    finally:
        configure_sandbox()


def test_the_block_defining_the_entry_point_is_preferred():
    answer = "Example:\n```python\nprint(f(1))\n```\nSolution:\n```python\ndef f(x):\n    return x\n```"
    assert extract_code(answer, "python", "f") == "def f(x):\n    return x"


def test_an_unclosed_fence_runs_to_the_end():
    assert extract_code("```py\nx = 1\n", "python") == "x = 1"


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"task": "fix"}, "needs the code"),
        ({"task": "generate"}, "needs a description"),
        ({"task": "translate", "code": "x = 1"}, "target_language"),
        (
            {"task": "generate", "description": "hello world", "language": "javascript", "execute": True},
            "only Python can be executed",
        ),
    ],
)
def test_missing_or_contradictory_inputs_are_explained(bad, message):
    with pytest.raises(ValidationError, match=message):
        CodeApp.Input(**bad)
