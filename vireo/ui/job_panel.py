"""Submit a job, stream its tokens live, cancel it, and show its result: shared by every app page.

Streamlit reruns the whole script on each click, interrupting the run in progress. So the job id lives
in session state, the Cancel button is drawn before streaming starts, and every run re-attaches to the
job's event stream (which replays from the start): a click on Cancel lands in a fresh run that sends
DELETE and then follows the stream to its `end`.
"""

from __future__ import annotations

import time
from contextlib import closing
from typing import Callable

import streamlit as st

from vireo.ui import session
from vireo.ui.client import ApiError
from vireo.ui.job_state import FINAL, JobState, timing_summary
from vireo.ui.safe_markdown import escape_text, safe_markdown

REDRAW_EVERY_S = 0.05  # redraw streamed text at most this often (a replay can hold thousands of tokens)
# Material icons render from Streamlit's own font, so badges look the same without an emoji font
BADGES = {
    "queued": ":gray[:material/schedule: queued]",
    "running": ":blue[:material/sync: running]",
    "succeeded": ":green[:material/check_circle: succeeded]",
    "failed": ":red[:material/error: failed]",
    "cancelled": ":orange[:material/cancel: cancelled]",
}
SUBMIT_TIMEOUT_S = 180.0  # the API checks input length with the model's tokenizer, loaded on first use


def start_job(slot: str, app: str, input: dict, options: dict | None = None) -> bool:
    """Submit a job and make it the one this page slot shows; False (with the error shown) on refusal."""
    try:
        with st.spinner("Submitting…"):
            job_id = session.client().submit(
                app, input, options, timeout_s=SUBMIT_TIMEOUT_S, model=session.chosen_model()
            )
    except ApiError as exc:
        session.show_error(exc, "the job was not accepted")
        return False
    st.session_state[f"{slot}.job"] = job_id
    st.session_state.pop(f"{slot}.done", None)
    return True


def current_job(slot: str) -> str | None:
    return st.session_state.get(f"{slot}.job")


ResultView = Callable[[dict], None]  # draws a succeeded job's result the way its page wants it shown


def job_panel(slot: str, main_field: str | None = None, result_view: ResultView | None = None) -> JobState | None:
    """Show the slot's job: live while it runs (with Cancel), then its final result (drawn by `result_view`
    when given, else its `main_field` as text); returns the state."""
    job_id = current_job(slot)
    if not job_id:
        return None
    done = st.session_state.get(f"{slot}.done")
    if done and done[0].job_id == job_id:
        show_final(done[0], done[1], main_field, result_view)
        return done[0]
    state = follow_live(slot, job_id)
    if state is None:
        return None
    view = session.call(lambda: session.client().job(job_id), "reading the finished job") or {}
    st.session_state[f"{slot}.done"] = (state, view)
    st.rerun()  # redraw without the Cancel button


def follow_live(slot: str, job_id: str) -> JobState | None:
    """Draw Cancel and live placeholders, then stream the job's events into them until it ends."""
    header = st.columns([4, 1])
    header[0].caption(f"Job `{job_id}`")
    if current_status(job_id) not in FINAL and header[1].button(
        "Cancel", key=f"{slot}.cancel.{job_id}", type="secondary", use_container_width=True
    ):
        session.call(lambda: session.client().cancel(job_id), "cancelling")
    status_line, progress_bar, text_box = st.empty(), st.empty(), st.empty()
    state = JobState(job_id)
    started, last_draw = time.monotonic(), 0.0

    def draw(final: bool = False) -> None:
        waited = time.monotonic() - started
        restarted = (
            f" · attempt {state.attempt} (restarted: {escape_text(state.restart_reason or '?')})"
            if state.attempt > 1
            else ""
        )
        status_line.markdown(
            f"**{BADGES.get(state.status, state.status)}** · {len(state.text):,} characters · {waited:.0f} s{restarted}"
        )
        if state.fraction or state.message:
            progress_bar.progress(
                min(max(state.fraction, 0.0), 1.0), text=escape_text(state.message) if state.message else None
            )
        with text_box.container(border=True):
            st.markdown(safe_markdown(state.text + ("" if final else " ▌")) if state.text else "_waiting for output…_")

    events = session.client().events(job_id, idle_s=session.settings().idle_refresh_s)
    try:
        with closing(events):
            for event in events:
                if event is not None:
                    state.apply(event)
                now = time.monotonic()
                if event is None or event.kind != "token" or now - last_draw >= REDRAW_EVERY_S:
                    draw()
                    last_draw = now
    except ApiError as exc:
        session.show_error(exc, "following the job")
        return None
    draw(final=True)
    return state


def current_status(job_id: str) -> str | None:
    """The job's status now, so a finished job is replayed without a Cancel button."""
    try:
        return session.client().job(job_id)["status"]
    except ApiError:
        return None  # the event stream reports the problem


def show_final(state: JobState, view: dict, main_field: str | None, result_view: ResultView | None = None) -> None:
    """A finished job: status, the main text (or the page's own view of the result), error, timings, usage
    and the full result."""
    status = view.get("status", state.status)
    model = f" · model `{view['model']}`" if view.get("model") else ""
    st.markdown(f"**{BADGES.get(status, status)}** · job `{state.job_id}`{model}")
    result = view.get("result") or state.result
    error = view.get("error") or state.error
    text = (result or {}).get(main_field) if main_field else None
    if text is None and state.text:
        text = state.text  # cancelled or failed: show what had streamed
    if result and result_view is not None:
        result_view(result)
    elif text:
        with st.container(border=True):
            st.markdown(safe_markdown(str(text)))
    if status == "failed":
        st.error(escape_text(error) if error else "the job failed")
    elif status == "cancelled":
        st.warning("Cancelled." + (" The text above is what had been generated." if state.text else ""))
    show_numbers(view)
    if result:
        with st.expander("Result (JSON)"):
            st.json(result)


def show_numbers(view: dict) -> None:
    """Timings in one row of metrics, token usage in the next."""
    times, usage = timing_summary(view), view.get("usage") or {}
    timing_cells = [
        (label, f"{times[key]:.2f} s")
        for key, label in (("queue_s", "Queue wait"), ("first_token_s", "First token"), ("total_s", "Total"))
        if key in times
    ]
    if "tokens_per_s" in times:
        timing_cells.append(("Tokens/s", f"{times['tokens_per_s']:.1f}"))
    usage_cells = [
        (label, str(usage[key]))
        for key, label in (
            ("prompt_tokens", "Tokens in"),
            ("completion_tokens", "Tokens out"),
            ("cached_tokens", "Cached"),
        )
        if key in usage
    ]
    if not any(usage.get(key) for key in ("prompt_tokens", "completion_tokens")):
        usage_cells = []  # an app that scores or runs no model (classify, echo): no tokens to show
    for cells in (timing_cells, usage_cells):
        if cells:
            for column, (label, value) in zip(st.columns(4), cells):
                column.metric(label, value)


def options_expander(key: str, max_tokens_default: int | None = None) -> dict:
    """Generation overrides (temperature, max tokens, seed); empty fields keep the app's defaults."""
    with st.expander("Generation options"):
        cols = st.columns(3)
        temperature = cols[0].number_input("Temperature", 0.0, 2.0, value=None, step=0.1, key=f"{key}.temp")
        max_tokens = cols[1].number_input("Max tokens", 1, 8192, value=max_tokens_default, step=16, key=f"{key}.max")
        seed = cols[2].number_input("Seed", value=None, step=1, key=f"{key}.seed")
    options = {"temperature": temperature, "max_tokens": max_tokens, "seed": seed}
    return {k: (int(v) if k != "temperature" else v) for k, v in options.items() if v is not None}
