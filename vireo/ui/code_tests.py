"""Pass/fail per test for the code app's sandboxed runs, read from what the sandbox prints (no Streamlit).

The code app runs the result and the user's test code as one program and reports one exit code. To show
each test's outcome, the page sends the tests wrapped: every top-level `assert`, every `test_*` function
and a `check(entry_point)` run one by one, each printing a marked line with its outcome; set-up lines
(imports, helpers) run as written. The marked lines are then read back out of the run's stdout.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

MARK = "@@vireo-test"
NAME_CHARS = 80


@dataclass(frozen=True)
class CaseOutcome:
    name: str
    passed: bool | None  # None: not reached (an earlier line stopped the program, or output was cut)
    detail: str = ""


def _name(source: str, node: ast.stmt) -> str:
    text = " ".join((ast.get_source_segment(source, node) or ast.dump(node)).split())
    return text if len(text) <= NAME_CHARS else text[: NAME_CHARS - 1] + "…"


def planned_tests(source: str, entry_point: str | None = None) -> list[str] | None:
    """The tests the harness will run, in order; None when the source does not parse as Python."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    names = []
    for node in tree.body:
        if isinstance(node, ast.Assert):
            names.append(_name(source, node))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            names.append(node.name)
    defines_check = any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == "check" for n in tree.body)
    return names + ([f"check({entry_point})"] if defines_check and entry_point else [])


_PRELUDE = f"""
def _vireo_run(_name, _fn):
    try:
        _fn()
    except BaseException as _exc:  # an assert, an error, or an exit inside a test
        _vireo_failed.append(_name)
        _why = (type(_exc).__name__ + ": " + str(_exc)).strip().rstrip(":").replace("\\n", " ")
        print({MARK!r}, "FAIL", repr(_name), _why, flush=True)
    else:
        print({MARK!r}, "PASS", repr(_name), flush=True)
_vireo_failed = []
"""


def wrap_tests(source: str, entry_point: str | None) -> str | None:
    """The tests as a program that reports each one; None when they do not parse (send them as they are)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    lines = [_PRELUDE]
    tests: list[str] = []
    defines_check = False
    for number, node in enumerate(tree.body):
        segment = ast.get_source_segment(source, node) or ast.unparse(node)
        if isinstance(node, ast.Assert):
            lines.append(f"def _vireo_assert_{number}():\n    {ast.unparse(node)}\n")
            tests.append(f"_vireo_run({_name(source, node)!r}, _vireo_assert_{number})")
            continue
        lines.append(segment + "\n")  # set-up, helpers and the test functions themselves, as written
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.name.startswith("test"):
                tests.append(f"_vireo_run({node.name!r}, {node.name})")
            defines_check = defines_check or node.name == "check"
    if defines_check and entry_point:
        tests.append(f"_vireo_run('check({entry_point})', lambda: check({entry_point}))")
        # the app calls check(entry_point) itself after the tests: it has run already
        tests.append("check = lambda *_args, **_kwargs: None")
    lines += [*tests, "if _vireo_failed:\n    raise SystemExit(1)\n"]
    return "\n".join(lines)


def read_outcomes(stdout: str, expected: list[str]) -> tuple[list[CaseOutcome], str]:
    """Each expected test's outcome from the marked lines of `stdout`, and stdout without them."""
    found: dict[str, CaseOutcome] = {}
    rest = []
    for line in stdout.splitlines():
        if not line.startswith(MARK + " "):
            rest.append(line)
            continue
        verdict, _, tail = line[len(MARK) + 1 :].partition(" ")
        name, detail = _split_repr(tail)
        found[name] = CaseOutcome(name, verdict == "PASS", detail.strip())
    outcomes = [found.get(name, CaseOutcome(name, None)) for name in expected]
    outcomes += [outcome for name, outcome in found.items() if name not in expected]
    return outcomes, "\n".join(rest)


def _split_repr(tail: str) -> tuple[str, str]:
    """("name", "reason") from "'name' reason": the shortest prefix that is a string literal."""
    for end in range(2, len(tail) + 1):
        try:
            value = ast.literal_eval(tail[:end])
        except (SyntaxError, ValueError):
            continue
        if isinstance(value, str):
            return value, tail[end:]
    return tail, ""
