"""The page of an app that ships none of its own: a form built from its input schema, the output streamed live."""

from __future__ import annotations

import streamlit as st

from vireo.ui import session, upload_limit
from vireo.ui.form_widgets import form_values
from vireo.ui.forms import FormError, build_input, form_fields, main_text_field
from vireo.ui.job_panel import job_panel, options_expander, start_job


def render_app(name: str) -> None:
    """Draw the form of app `name`, submit it as a job and show the job."""
    app = session.require_app(name)
    if app is None:
        return
    st.title(app.get("title") or name)
    st.caption(app.get("description", ""))
    slot = f"app.{name}"
    fields = form_fields(app.get("input_schema") or {})
    with st.form(f"{slot}.form"):
        raw = form_values(fields, slot)
        options = options_expander(f"{slot}.options")
        submitted = st.form_submit_button("Run", type="primary")
    if submitted:
        try:
            job_input = build_input(fields, raw)
            body_limit = session.request_body_limit()
            if body_limit and (too_large := upload_limit.too_large(name, job_input, body_limit)):
                raise FormError(too_large)
            start_job(slot, name, job_input, options)
        except FormError as exc:
            st.warning(str(exc))
    job_panel(slot, main_field=main_text_field(app.get("output_schema") or {}))
