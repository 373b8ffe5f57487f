"""Summarize: paste a text or upload a document, pick length and style, watch the summary stream in (long
texts map-reduced chunk by chunk), then read it beside the source with its length ratio."""

from __future__ import annotations

import streamlit as st

from vireo.ui.document_text import DOCUMENT_TYPES, UnreadableDocument, document_text, word_count
from vireo.ui.form_widgets import form_values
from vireo.ui.forms import FormError, build_input, field_help, form_fields, resolve
from vireo.ui.job_panel import current_job, job_panel, options_expander, start_job
from vireo.ui.page_plugins import AppPage
from vireo.ui.safe_markdown import safe_markdown

SLOT = "summarize"
LENGTHS = ("short", "medium", "long")
STYLE_NAMES = {"paragraph": "Paragraph", "bullets": "Bullet points", "tldr": "TL;DR"}
SOURCE_HEIGHT = 420


def _choices(schema: dict, name: str, fallback: tuple[str, ...]) -> list[str]:
    node = schema.get("properties", {}).get(name)
    return list(resolve(schema, node).get("enum", fallback)) if node else list(fallback)


def _source_text(pasted: str, upload) -> str:
    """The uploaded document's text if a file is given, else the pasted text."""
    if upload is None:
        return pasted
    try:
        return document_text(upload.name, upload.getvalue())
    except UnreadableDocument as exc:
        raise FormError(str(exc)) from None


def show_beside_source(result: dict, source: str) -> None:
    """The summary beside its source, with how much shorter it is."""
    summary = result.get("summary") or ""
    source_words, summary_words = word_count(source), word_count(summary)
    ratio = summary_words / source_words if source_words else 0
    cols = st.columns(2)
    with cols[0]:
        st.markdown(f"**Source** · {source_words:,} words")
        with st.container(border=True, height=SOURCE_HEIGHT if len(source) > 1500 else "content"):
            st.markdown(safe_markdown(source))
    with cols[1]:
        st.markdown(f"**Summary** · {summary_words:,} words · {ratio:.0%} of the source")
        with st.container(border=True):
            st.markdown(safe_markdown(summary))
        chunks, rounds = result.get("chunks", 1), result.get("rounds", 1)
        how = "in one pass" if chunks <= 1 else f"from {chunks} chunks in {rounds} round(s) (map-reduce)"
        st.caption(
            f"Summarized {how} · {result.get('input_tokens', '?')} tokens in, {result.get('summary_tokens', '?')} out"
        )


def render(client, app: dict) -> None:
    st.title("Summarize")
    st.caption(app.get("description", ""))
    schema = app.get("input_schema") or {}
    shown = ("text", "length", "style")
    extra = [f for f in form_fields(schema) if f.name not in shown]  # focus, word count, chunk size
    with st.form("summarize.form"):
        cols = st.columns([3, 2])
        text = cols[0].text_area(
            "Text to summarize",
            height=240,
            key="summarize.text",
            placeholder="Paste an article, a report, meeting notes…",
            help=field_help(schema, "text"),
        )
        upload = cols[1].file_uploader(
            "…or upload a document",
            type=list(DOCUMENT_TYPES),
            key="summarize.file",
            help="A .txt, .md, .pdf or .docx file; its text is summarized instead of the pasted text.",
        )
        row = st.columns(2)
        length = row[0].radio(
            "Length",
            _choices(schema, "length", LENGTHS),
            index=1,
            horizontal=True,
            key="summarize.length",
            help=field_help(schema, "length"),
        )
        style = row[1].radio(
            "Style",
            _choices(schema, "style", tuple(STYLE_NAMES)),
            horizontal=True,
            format_func=lambda s: STYLE_NAMES.get(s, s),
            key="summarize.style",
            help=field_help(schema, "style"),
        )
        raw = {}
        if extra:
            with st.expander("More options"):
                raw = form_values(extra, SLOT)
        options = options_expander("summarize.options")
        submitted = st.form_submit_button("Summarize", type="primary")
    if submitted:
        try:
            more = build_input(extra, raw) if extra else {}
            source = _source_text(text, upload)
            if not source.strip():
                raise FormError("Paste some text or upload a document first.")
            if start_job(SLOT, "summarize", {"text": source, "length": length, "style": style, **more}, options):
                st.session_state[f"{SLOT}.source.{current_job(SLOT)}"] = source
        except FormError as exc:
            st.warning(str(exc))
    source_shown = st.session_state.get(f"{SLOT}.source.{current_job(SLOT)}")
    view = (lambda result: show_beside_source(result, source_shown)) if source_shown else None
    job_panel(SLOT, main_field="summary", result_view=view)


PAGE = AppPage(render=render, icon=":material/summarize:", order=10)
