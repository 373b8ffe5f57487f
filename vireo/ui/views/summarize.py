"""Summarize: paste a text, pick a length, watch the summary stream in."""

from __future__ import annotations

import streamlit as st

from vireo.ui import session
from vireo.ui.form_widgets import form_values
from vireo.ui.forms import FormError, build_input, form_fields
from vireo.ui.job_panel import job_panel, options_expander, start_job

SLOT = "summarize"
LENGTHS = ("short", "medium", "long")


def render() -> None:
    st.title("Summarize")
    app = session.require_app("summarize")
    if app is None:
        return
    st.caption(app.get("description", ""))
    # text and length get the prominent widgets; whatever else the app accepts goes under "More options"
    extra = [f for f in form_fields(app.get("input_schema") or {}) if f.name not in ("text", "length")]
    with st.form("summarize.form"):
        text = st.text_area(
            "Text to summarize",
            height=240,
            key="summarize.text",
            placeholder="Paste an article, a report, meeting notes…",
        )
        length = st.radio("Length", LENGTHS, index=1, horizontal=True, key="summarize.length")
        if extra:
            with st.expander("More options"):
                raw = form_values(extra, SLOT)
        options = options_expander("summarize.options")
        submitted = st.form_submit_button("Summarize", type="primary")
    if submitted:
        try:
            more = build_input(extra, raw) if extra else {}
            if not text.strip():
                raise FormError("Paste some text first.")
            start_job(SLOT, "summarize", {"text": text, "length": length, **more}, options)
        except FormError as exc:
            st.warning(str(exc))
    job_panel(SLOT, main_field="summary")
