"""Pass/fail per test, read from a real Python run of the wrapped tests (as the sandbox runs them)."""

from __future__ import annotations

import subprocess
import sys

from vireo.ui.code_tests import CaseOutcome, planned_tests, read_outcomes, wrap_tests
from vireo.ui.text_diff import changed_lines, unified_diff

TESTS = """import math
def helper(x):
    return x
assert add(1, 2) == 3
assert add(2, 2) == 5, "two and two"
def test_negative():
    assert add(-1, -1) == -2
def test_floats():
    assert math.isclose(add(0.1, 0.2), 0.3)
def check(candidate):
    assert candidate(0, 0) == 0
"""


def run_like_the_code_app(code: str, tests: str, entry_point: str | None) -> subprocess.CompletedProcess:
    """The program the code app builds: the code, the tests, then check(entry_point) when tests define it."""
    program = code + "\n\n" + tests + "\n"
    if entry_point and "def check(" in tests:
        program += f"\ncheck({entry_point})\n"
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)


def test_each_assert_test_function_and_check_is_reported_on_its_own():
    wrapped = wrap_tests(TESTS, "add")
    run = run_like_the_code_app("def add(a, b):\n    return a + b\n", wrapped, "add")
    outcomes, rest = read_outcomes(run.stdout, planned_tests(TESTS, "add"))
    assert outcomes == [
        CaseOutcome("assert add(1, 2) == 3", True),
        CaseOutcome('assert add(2, 2) == 5, "two and two"', False, "AssertionError: two and two"),
        CaseOutcome("test_negative", True),
        CaseOutcome("test_floats", True),
        CaseOutcome("check(add)", True),
    ]
    assert run.returncode == 1 and rest == ""  # one failed: the run fails, as the app reports it


def test_all_passing_exits_zero_and_check_runs_once():
    tests = "calls = []\ndef check(candidate):\n    calls.append(1)\n    print('checked', len(calls))\n"
    run = run_like_the_code_app("def add(a, b):\n    return a + b\n", wrap_tests(tests, "add"), "add")
    outcomes, rest = read_outcomes(run.stdout, planned_tests(tests, "add"))
    assert run.returncode == 0 and outcomes == [CaseOutcome("check(add)", True)]
    assert rest == "checked 1"  # the program's own output stays, without the marked lines


def test_an_error_in_the_code_fails_every_test_with_its_reason():
    run = run_like_the_code_app("def add(a, b):\n    return a + c\n", wrap_tests(TESTS, None), None)
    outcomes, _ = read_outcomes(run.stdout, planned_tests(TESTS, None))
    assert [o.passed for o in outcomes] == [False, False, False, False]
    assert outcomes[0].detail == "NameError: name 'c' is not defined"


def test_tests_that_stop_the_program_leave_the_rest_not_reached():
    outcomes, _ = read_outcomes("@@vireo-test PASS 'first'\n", ["first", "second"])
    assert outcomes == [CaseOutcome("first", True), CaseOutcome("second", None)]


def test_tests_that_do_not_parse_are_sent_as_they_are():
    assert wrap_tests("assert (", None) is None and planned_tests("assert (", None) is None


def test_a_diff_shows_what_a_fix_changed():
    before, after = "def add(a, b):\n    return a - b\n", "def add(a, b):\n    return a + b\n"
    diff = unified_diff(before, after, "given", "result")
    assert "-    return a - b" in diff and "+    return a + b" in diff and diff.startswith("--- given")
    assert changed_lines(before, after) == (1, 1)
    assert unified_diff(before, before) == ""
