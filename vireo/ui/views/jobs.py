"""My jobs: the newest first, their status, and any one opened (live if it still runs)."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from vireo.ui import session
from vireo.ui.forms import main_text_field
from vireo.ui.job_panel import current_job, job_panel

SLOT = "jobs"
PAGE_SIZE = 20


def _row(job: dict) -> dict:
    queued = (job.get("timings") or {}).get("queued_at")
    return {
        "id": job["id"],
        "app": job["app"],
        "status": job["status"],
        "progress": round(100 * (job.get("progress") or {}).get("fraction", 0)),
        "queued": dt.datetime.fromtimestamp(queued).strftime("%Y-%m-%d %H:%M:%S") if queued else "",
        "tokens": (job.get("usage") or {}).get("completion_tokens", 0),
        "error": job.get("error") or "",
    }


def _open(job_id: str) -> None:
    if current_job(SLOT) != job_id:
        st.session_state[f"{SLOT}.job"] = job_id
        st.session_state.pop(f"{SLOT}.done", None)


def render() -> None:
    st.title("Jobs")
    cursors = st.session_state.setdefault("jobs.cursors", [None])  # a stack: the cursor of each page
    page = session.call(lambda: session.client().jobs(PAGE_SIZE, cursors[-1]), "listing jobs")
    if page is None:
        return
    jobs = page.get("jobs", [])
    if not jobs:
        st.info("No jobs yet. Run one from an app page.")
    else:
        st.dataframe([_row(j) for j in jobs], hide_index=True, use_container_width=True)
    nav = st.columns([1, 1, 1, 3])
    if len(cursors) > 1 and nav[0].button("← Newer"):
        cursors.pop()
        st.rerun()
    if page.get("next_cursor") and nav[1].button("Older →"):
        cursors.append(page["next_cursor"])
        st.rerun()
    nav[2].button("Refresh")  # any click reruns the page, which lists the jobs again
    if not jobs:
        return
    labels = {j["id"]: f"{j['id']} · {j['app']} · {j['status']}" for j in jobs}
    # "" for a stale pick no longer listed (Streamlit formats the stored value too): not an option, so reset
    chosen = st.selectbox(
        "Open a job", list(labels), format_func=lambda job: labels.get(job, ""), index=None, key="jobs.pick"
    )
    if chosen:
        _open(chosen)
    if job_id := current_job(SLOT):
        app = next((j["app"] for j in jobs if j["id"] == job_id), None)
        described = session.apps().get(app, {}) if app is not None else {}  # None: not on this page
        output_schema = described.get("output_schema") or {}
        st.subheader(f"Job {job_id}")
        job_panel(SLOT, main_field=main_text_field(output_schema))
