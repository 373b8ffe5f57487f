"""Draw `FormField`s as Streamlit widgets and collect their raw values."""

from __future__ import annotations

import base64
from typing import Any, Callable

import streamlit as st

from vireo.ui import session, upload_limit
from vireo.ui.forms import FormField, initial_text


def _number(field: FormField, key: str) -> Any:
    integer = field.widget == "integer"
    # an integer field passes ints throughout, which Streamlit turns into an integer input
    cast: Callable[[Any], float] = int if integer else float
    low = cast(field.minimum) if field.minimum is not None else None
    high = cast(field.maximum) if field.maximum is not None else None
    value = cast(field.default) if field.default is not None else (None if not field.required else low)
    step: float = 1 if integer else (0.05 if high is not None and high <= 2 else 0.1)
    return st.number_input(
        field.label, min_value=low, max_value=high, value=value, step=step, help=field.help or None, key=key
    )


def _select(field: FormField, key: str) -> Any:
    options = list(field.options)
    if not field.required and field.default is None:
        options = [None, *options]  # "not set": the app decides
    index = options.index(field.default) if field.default in options else 0
    return st.selectbox(
        field.label,
        options,
        index=index,
        help=field.help or None,
        key=key,
        format_func=lambda v: "—" if v is None else str(v),
    )


IMAGE_TYPES = ["png", "jpg", "jpeg", "webp", "gif", "bmp"]


def _files(field: FormField, key: str, many: bool) -> Any:
    types = IMAGE_TYPES if "image" in field.name.lower() else None
    body_limit = session.request_body_limit()
    cap_mb = upload_limit.uploader_cap_mb(body_limit) if body_limit else None
    uploaded = st.file_uploader(
        field.label, type=types, accept_multiple_files=many, help=field.help or None, key=key, max_upload_size=cap_mb
    )
    if body_limit:
        st.caption(upload_limit.note(body_limit))
    if not uploaded:
        return None
    encode = lambda f: base64.b64encode(f.getvalue()).decode("ascii")  # noqa: E731
    return [encode(f) for f in uploaded] if many else encode(uploaded)


def field_widget(field: FormField, key: str) -> Any:
    """One widget for one field; returns its raw value (see `forms.parse_value`)."""
    label, help = field.label + (" *" if field.required else ""), field.help or None
    if field.widget == "select":
        return _select(field, key)
    if field.widget in ("integer", "number"):
        return _number(field, key)
    if field.widget == "checkbox":
        return st.checkbox(field.label, value=bool(field.default), help=help, key=key)
    if field.widget == "file":
        return _files(field, key, many=False)
    if field.widget == "files":
        return _files(field, key, many=True)
    if field.widget == "text":
        return st.text_input(label, value=initial_text(field), help=help, key=key)
    placeholder = {"lines": "one per line", "json": "JSON"}.get(field.widget)
    height = 220 if field.widget == "textarea" else 110
    return st.text_area(label, value=initial_text(field), help=help, key=key, height=height, placeholder=placeholder)


def form_values(fields: list[FormField], key: str) -> dict[str, Any]:
    """Every field's raw value, drawn in order (call inside an `st.form`)."""
    return {field.name: field_widget(field, f"{key}.{field.name}") for field in fields}
