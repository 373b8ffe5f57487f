"""My jobs: the history with filters (app, status, model, date), duration and tokens; one opened shows its
input, output (live if it still runs) and event timeline, and can be run again or cancelled."""

from __future__ import annotations

import datetime as dt
from contextlib import closing

import streamlit as st

from vireo.ui import session
from vireo.ui.client import ApiError
from vireo.ui.forms import main_text_field
from vireo.ui.job_history import JobFilter, job_row, timeline, values
from vireo.ui.job_panel import BADGES, current_job, job_panel
from vireo.ui.job_state import FINAL
from vireo.ui.safe_markdown import escape_text

SLOT = "jobs"
PAGE_SIZE = 100
MAX_JOBS = 200  # the newest jobs the history reads (the API lists a tenant's jobs newest first)
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


def _load() -> list[dict] | None:
    """The newest jobs, up to MAX_JOBS, read page by page."""
    jobs: list[dict] = []
    cursor = None
    while len(jobs) < MAX_JOBS:
        page = session.call(lambda: session.client().jobs(PAGE_SIZE, cursor), "listing jobs")
        if page is None:
            return None if not jobs else jobs
        jobs += page.get("jobs", [])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return jobs


def _filters(jobs: list[dict]) -> JobFilter:
    cols = st.columns([2, 2, 2, 3])
    apps = cols[0].multiselect("App", values(jobs, "app"), key="jobs.f.app", placeholder="All apps")
    statuses = cols[1].multiselect("Status", STATUSES, key="jobs.f.status", placeholder="Any status")
    models = cols[2].multiselect("Model", values(jobs, "model"), key="jobs.f.model", placeholder="All models")
    days = cols[3].date_input("Queued between", value=[], key="jobs.f.dates", format="YYYY-MM-DD")
    chosen = [d for d in (days if isinstance(days, (tuple, list)) else [days]) if isinstance(d, dt.date)]
    since, until = (chosen[0], chosen[-1]) if chosen else (None, None)
    return JobFilter(tuple(apps), tuple(statuses), tuple(models), since, until)


def _open(job_id: str) -> None:
    if current_job(SLOT) != job_id:
        st.session_state[f"{SLOT}.job"] = job_id
        st.session_state.pop(f"{SLOT}.done", None)


def _rerun(detail: dict) -> None:
    """Submit the job's app, input, options and model again, and open the new job."""
    try:
        new_id = session.client().submit(
            detail["app"], detail.get("input") or {}, detail.get("options") or {}, model=detail.get("model")
        )
    except ApiError as exc:
        session.show_error(exc, "running it again")
        return
    _open(new_id)
    st.session_state["jobs.pick_next"] = new_id  # the picker shows it from the next run on
    st.toast(f"Started job {new_id}")


def _timeline(job_id: str) -> None:
    events = []
    stream = session.client().events(job_id, idle_s=0.5)
    try:
        with closing(stream):
            for event in stream:
                if event is None:  # still running: what has happened so far
                    break
                events.append(event)
    except ApiError as exc:
        session.show_error(exc, "reading the events")
        return
    rows, curve = timeline(events)
    if curve and len(curve) > 1:
        st.line_chart(curve, x="seconds", y="characters", height=200, alt="Characters streamed over time")
    st.dataframe(rows, hide_index=True, width="stretch")


def _detail(job_id: str) -> None:
    detail = session.call(lambda: session.client().job(job_id), "reading the job")
    if detail is None:
        return
    status = detail.get("status", "")
    model = f" · model `{detail['model']}`" if detail.get("model") else ""
    st.subheader(f"Job {job_id}")
    st.markdown(f"**{BADGES.get(status, status)}** · app `{escape_text(detail['app'])}`{model}")
    actions = st.columns([1, 1, 4])
    if actions[0].button(
        "Run again", icon=":material/replay:", key=f"jobs.rerun.{job_id}", disabled=not detail.get("input")
    ):
        _rerun(detail)
        st.rerun()
    if status not in FINAL and actions[1].button("Cancel", icon=":material/cancel:", key=f"jobs.cancel.{job_id}"):
        session.call(lambda: session.client().cancel(job_id), "cancelling")
        st.rerun()
    output, submitted, events = st.tabs(["Output", "Input", "Timeline"])
    with submitted:
        if detail.get("input") is None:
            st.info("This server does not return a job's input.")
        else:
            st.json(detail["input"], expanded=2)
            if detail.get("options"):
                st.markdown("**Options**")
                st.json(detail["options"])
    with events:
        _timeline(job_id)
    with output:
        described = session.apps().get(detail["app"], {})
        job_panel(SLOT, main_field=main_text_field(described.get("output_schema") or {}))


def render() -> None:
    st.title("Jobs")
    jobs = _load()
    if jobs is None:
        return
    if not jobs:
        st.info("No jobs yet. Run one from an app page.")
        return
    chosen = _filters(jobs)
    shown = [job for job in jobs if chosen.keeps(job)]
    st.caption(f"{len(shown)} of the newest {len(jobs)} jobs · newest first")
    st.dataframe(
        [job_row(job) for job in shown],
        hide_index=True,
        width="stretch",
        height=min(420, 38 + 35 * max(len(shown), 1)),
        column_config={
            "id": st.column_config.TextColumn("id", width="small"),
            "seconds": st.column_config.NumberColumn("seconds", format="%.2f", help="From submit to the end"),
            "error": st.column_config.TextColumn("error", width="medium"),
        },
    )
    cols = st.columns([4, 1], vertical_alignment="bottom")
    labels = {j["id"]: f"{j['id']} · {j['app']} · {j['status']}" for j in shown}
    pending = st.session_state.pop("jobs.pick_next", None)  # a job "Run again" started: the picker names it
    if pending in labels:
        st.session_state["jobs.pick"] = st.session_state["jobs.picked_last"] = pending
    picked = cols[0].selectbox(
        "Open a job", list(labels), format_func=lambda job: labels.get(job, job), index=None, key="jobs.pick"
    )
    cols[1].button("Refresh", icon=":material/refresh:", width="stretch")  # a click reruns the page
    if picked and picked != st.session_state.get("jobs.picked_last"):  # a new pick (a re-run opens its own job)
        st.session_state["jobs.picked_last"] = picked
        _open(picked)
    if job_id := current_job(SLOT):
        _detail(job_id)
