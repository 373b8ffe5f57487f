"""Code: the task first, then only the fields that task needs; the result highlighted, what changed as a
diff, and a sandboxed run's tests one by one with the program's own output."""

from __future__ import annotations

import streamlit as st

from vireo.ui.code_tests import CaseOutcome, planned_tests, read_outcomes, wrap_tests
from vireo.ui.forms import field_bounds, field_default, field_help
from vireo.ui.job_panel import current_job, job_panel, options_expander, start_job
from vireo.ui.page_plugins import AppPage
from vireo.ui.safe_markdown import escape_text, safe_markdown
from vireo.ui.text_diff import changed_lines, unified_diff

SLOT = "code"
TASKS = {
    "generate": "Write new code",
    "complete": "Complete",
    "fix": "Fix a bug",
    "refactor": "Refactor",
    "explain": "Explain",
    "translate": "Translate",
    "docstring": "Document",
    "tests": "Write tests",
}
CODE_LABELS = {
    "complete": "Code to complete",
    "fix": "Code with the bug",
    "refactor": "Code to refactor",
    "explain": "Code to explain",
    "translate": "Code to translate",
    "docstring": "Code to document",
    "tests": "Code to test",
}
CHANGES_CODE = ("complete", "fix", "refactor", "docstring")  # tasks whose answer is the given code, changed
LANGUAGES = (
    "python",
    "javascript",
    "typescript",
    "go",
    "rust",
    "java",
    "c",
    "c++",
    "c#",
    "ruby",
    "php",
    "shell",
    "sql",
    "kotlin",
    "swift",
)
LANGUAGE_NAMES = {"c++": "C++", "c#": "C#", "php": "PHP", "sql": "SQL", "javascript": "JavaScript"}
LANGUAGE_NAMES |= {"typescript": "TypeScript"}
HIGHLIGHT = {"c++": "cpp", "c#": "csharp", "shell": "bash", "py": "python", "js": "javascript", "ts": "typescript"}
PYTHON = ("python", "py", "python3")


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code.capitalize())


def highlight_as(language: str) -> str:
    """The language name `st.code` highlights `language` with."""
    return HIGHLIGHT.get(language.lower(), language.lower())


def _language(label: str, key: str, default: str = "python", help: str | None = None) -> str:
    return (
        st.selectbox(
            label,
            LANGUAGES,
            index=LANGUAGES.index(default) if default in LANGUAGES else 0,
            format_func=language_name,
            accept_new_options=True,  # any language the model knows can be typed in
            key=key,
            help=help,
        )
        or default
    ).strip()


def _form(schema: dict) -> tuple[dict, dict, dict] | None:
    """The task's own fields; returns (job input, what the result view needs, generation options) once Run
    is clicked."""
    task = st.segmented_control(
        "Task",
        list(TASKS),
        format_func=lambda task: TASKS.get(task, task),
        default="generate",
        key=f"{SLOT}.task",
        required=True,
    )
    task = task or "generate"
    cols = st.columns(2)
    with cols[0]:
        language = _language(
            "Language of the code" if task != "generate" else "Language",
            f"{SLOT}.language",
            help=field_help(schema, "language"),
        )
    target = None
    if task == "translate":
        with cols[1]:
            target = _language("Translate to", f"{SLOT}.target", "javascript", field_help(schema, "target_language"))
    job: dict = {"task": task, "language": language}
    if task == "generate":
        job["description"] = st.text_area(
            "What should the code do?",
            key=f"{SLOT}.description",
            height=120,
            placeholder="A function is_palindrome(s) that ignores case and punctuation.",
            help=field_help(schema, "description"),
        )
    else:
        job["code"] = st.text_area(CODE_LABELS[task], key=f"{SLOT}.code", height=220, help=field_help(schema, "code"))
        if task == "fix":
            job["error"] = st.text_area(
                "Error message or wrong behaviour (optional)",
                key=f"{SLOT}.error",
                height=90,
                help=field_help(schema, "error"),
            )
        job["description"] = st.text_input(
            "Extra instructions (optional)", key=f"{SLOT}.instructions", help=field_help(schema, "description")
        )
    if target:
        job["target_language"] = target
    output_language = target or language
    view: dict = {"task": task, "given": job.get("code") or "", "tests": None}
    if task != "explain" and output_language.lower() in PYTHON:
        _run_options(schema, task, job, view)
    options = options_expander(f"{SLOT}.options", max_tokens_default=int(field_default(schema, "max_tokens", 512)))
    if "max_tokens" in options:  # the app's own field: it budgets the context with it
        low, high = field_bounds(schema, "max_tokens")
        job["max_tokens"] = int(min(max(options.pop("max_tokens"), low or 16), high or 4096))
    if not st.button("Run", type="primary", key=f"{SLOT}.run"):
        return None
    job = {k: v.strip() if isinstance(v, str) else v for k, v in job.items()}
    job = {k: v for k, v in job.items() if v not in ("", None)}
    if task == "generate" and not job.get("description"):
        st.warning("Say what the code should do.")
        return None
    if task != "generate" and not job.get("code"):
        st.warning(f"Paste the {CODE_LABELS[task].lower()} first.")
        return None
    return job, view, options


def _run_options(schema: dict, task: str, job: dict, view: dict) -> None:
    """The sandbox: run the Python result (and, except for written tests, the user's tests)."""
    execute = st.toggle(
        "Run the result in the sandbox" + (" (runs the written tests)" if task == "tests" else " against tests"),
        key=f"{SLOT}.execute",
        help=field_help(schema, "execute"),
    )
    if not execute:
        return
    job["execute"] = True
    cols = st.columns([3, 1])
    if task != "tests":
        tests = st.text_area(
            "Tests (Python)",
            key=f"{SLOT}.tests",
            height=140,
            placeholder="assert is_palindrome('A man, a plan, a canal: Panama')\nassert not is_palindrome('vireo')",
            help="Top-level asserts, test_ functions, or a check(candidate) function with the function name "
            "below; each is reported on its own.",
        )
        entry_point = (
            cols[0]
            .text_input("Function name (optional)", key=f"{SLOT}.entry_point", help=field_help(schema, "entry_point"))
            .strip()
        )
        if entry_point:
            job["entry_point"] = entry_point
        if tests.strip():
            wrapped = wrap_tests(tests, entry_point or None)
            job["tests"] = wrapped or tests
            view["tests"] = planned_tests(tests, entry_point or None) if wrapped else None
    low, high = field_bounds(schema, "timeout_s")
    job["timeout_s"] = cols[1].number_input(
        "Time limit (seconds)",
        min_value=1.0,
        max_value=float(high or 60),
        value=float(field_default(schema, "timeout_s", 10.0)),
        step=1.0,
        key=f"{SLOT}.timeout",
        help=field_help(schema, "timeout_s"),
    )


OUTCOME_MARKS = {
    True: ":green[:material/check_circle:] passed",
    False: ":red[:material/cancel:] failed",
    None: ":gray[:material/pause_circle:] not reached",
}


def show_tests(outcomes: list[CaseOutcome]) -> None:
    """One line per test: its outcome, its name and, for a failure, why."""
    passed = sum(o.passed is True for o in outcomes)
    st.markdown(f"**Tests: {passed} of {len(outcomes)} passed**")
    with st.container(border=True):
        for outcome in outcomes:
            why = f" — {escape_text(outcome.detail)}" if outcome.detail else ""
            st.markdown(f"{OUTCOME_MARKS[outcome.passed]} · `{outcome.name.replace('`', '')}`{why}")


def show_execution(execution: dict, tests: list[str] | None) -> None:
    """The sandboxed run: overall outcome, each test, and the program's stdout and stderr."""
    if execution.get("timed_out"):
        st.error(f"The run was stopped at its time limit ({execution.get('duration_s', 0):.1f} s).")
    elif execution.get("passed"):
        st.success(f"The run passed (exit code 0, {execution.get('duration_s', 0):.2f} s).")
    else:
        st.error(f"The run failed (exit code {execution.get('exit_code')}, {execution.get('duration_s', 0):.2f} s).")
    stdout = execution.get("stdout") or ""
    if tests is not None:
        outcomes, stdout = read_outcomes(stdout, tests)
        if outcomes:
            show_tests(outcomes)
    st.caption(f"Isolation: {escape_text(str(execution.get('isolation', '?')))}")
    if execution.get("output_limited"):
        st.warning("The program wrote more output than allowed and was stopped.")
    cols = st.columns(2)
    with cols[0]:
        st.markdown("**Standard output**")
        st.code(stdout or "(nothing)", language="text")
    with cols[1]:
        st.markdown("**Standard error**")
        st.code(execution.get("stderr") or "(nothing)", language="text")


def show_result(result: dict, view: dict) -> None:
    """The code highlighted (or the explanation), what it changed, and the sandboxed run."""
    language = result.get("language") or "python"
    code = result.get("code")
    if code is None:  # explain: the answer is prose
        with st.container(border=True):
            st.markdown(safe_markdown(result.get("text") or ""))
        return
    tabs = ["Code", *(["Changes"] if view.get("task") in CHANGES_CODE and view.get("given") else []), "Answer"]
    drawn = dict(zip(tabs, st.tabs(tabs)))
    with drawn["Code"]:
        st.code(code, language=highlight_as(language), line_numbers=True)
        st.download_button(
            "Download", code, file_name=f"result.{highlight_as(language)}", key=f"{SLOT}.download", mime="text/plain"
        )
    if "Changes" in drawn:
        with drawn["Changes"]:
            diff = unified_diff(view["given"], code, "given", "result")
            added, removed = changed_lines(view["given"], code)
            st.caption(f"{added} line(s) added, {removed} removed")
            st.code(diff or "No changes.", language="diff")
    with drawn["Answer"]:
        st.markdown(safe_markdown(result.get("text") or ""))
    if result.get("execution"):
        show_execution(result["execution"], view.get("tests"))


def render(client, app: dict) -> None:
    st.title("Code")
    st.caption(app.get("description", ""))
    schema = app.get("input_schema") or {}
    submitted = _form(schema)
    if submitted is not None:
        job, view, options = submitted
        if start_job(SLOT, "code", job, options):
            st.session_state[f"{SLOT}.view.{current_job(SLOT)}"] = view
    view = st.session_state.get(f"{SLOT}.view.{current_job(SLOT)}", {})
    job_panel(SLOT, main_field="text", result_view=lambda result: show_result(result, view))


PAGE = AppPage(render=render, icon=":material/code:", order=40)
