"""Chat: a multi-turn conversation with the `chat` app; the history lives in the browser session."""

from __future__ import annotations

import streamlit as st

from vireo.ui import session
from vireo.ui.job_panel import current_job, follow_live, start_job
from vireo.ui.safe_markdown import escape_text, safe_markdown

SLOT = "chat"


def _history() -> list[dict]:
    return st.session_state.setdefault("chat.history", [])


def _settings_row() -> dict:
    with st.expander("System prompt and sampling", expanded=False):
        system = st.text_area(
            "System prompt", key="chat.system", height=80, placeholder="You are a concise, helpful assistant."
        )
        cols = st.columns(3)
        temperature = cols[0].slider("Temperature", 0.0, 2.0, 0.7, 0.05, key="chat.temperature")
        max_tokens = cols[1].number_input("Max tokens", 1, 4096, 256, 32, key="chat.max_tokens")
        if cols[2].button("New conversation", key="chat.clear"):
            st.session_state["chat.history"] = []
            st.session_state.pop(f"{SLOT}.job", None)
    return {"system": system.strip() or None, "temperature": temperature, "max_tokens": int(max_tokens)}


def _reply_to_history(job_id: str) -> None:
    """Stream the assistant's reply; once it ends, keep it (even a cancelled part) in the history."""
    with st.chat_message("assistant"):
        state = follow_live(SLOT, job_id)
    if state is None:
        return
    st.session_state.pop(f"{SLOT}.job", None)
    if state.status == "failed":
        st.session_state["chat.error"] = state.error or "the reply failed"
    elif state.text:
        cut = (state.result or {}).get("finish_reason") == "length"
        note = "stopped" if state.status == "cancelled" else ("cut at the max-tokens limit" if cut else None)
        _history().append({"role": "assistant", "content": state.text, "note": note})
    st.rerun()


def render() -> None:
    st.title("Chat")
    if session.require_app("chat") is None:
        return
    settings = _settings_row()
    for message in _history():
        with st.chat_message(message["role"]):
            st.markdown(safe_markdown(message["content"]))
            if message.get("note"):
                st.caption(message["note"])
    if error := st.session_state.pop("chat.error", None):
        st.error(escape_text(error))
    prompt = st.chat_input("Message Vireo")
    if prompt:
        _history().append({"role": "user", "content": prompt})
        with st.chat_message("user"):
            st.markdown(safe_markdown(prompt))
        messages = [{"role": m["role"], "content": m["content"]} for m in _history()]
        if not start_job(SLOT, "chat", {"messages": messages, **settings}):
            _history().pop()
    if job_id := current_job(SLOT):
        _reply_to_history(job_id)
