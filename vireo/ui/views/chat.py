"""Chat: conversations with the `chat` app in bubbles, replies streamed live; each conversation (with its
system prompt) is kept, listed on the left and can be picked up again, after a reload too."""

from __future__ import annotations

import streamlit as st

from vireo.ui import session
from vireo.ui.chat_sessions import ChatStore, Conversation, new_conversation
from vireo.ui.forms import field_bounds, field_default, field_help
from vireo.ui.job_panel import current_job, follow_live, start_job
from vireo.ui.page_plugins import AppPage
from vireo.ui.safe_markdown import escape_text, safe_markdown

SLOT = "chat"


def _store() -> ChatStore:
    conf = session.settings()
    api = session.client()
    key = st.session_state.get("api_key") or conf.api_key
    return ChatStore(conf.ui_home / "chats", api.base_url, key)


def _conversations() -> list[Conversation]:
    """This key's conversations (read from disk once per key), the one being written first."""
    store = _store()
    if st.session_state.get("chat.store") != store.path:
        st.session_state["chat.store"] = store.path
        st.session_state["chat.conversations"] = store.load() or [new_conversation()]
        st.session_state["chat.current"] = st.session_state["chat.conversations"][0].id
    return st.session_state["chat.conversations"]


def _current() -> Conversation:
    conversations = _conversations()
    chosen = st.session_state.get("chat.current")
    found = next((c for c in conversations if c.id == chosen), None)
    if found is None:
        found = conversations[0]
        st.session_state["chat.current"] = found.id
    return found


def _save() -> None:
    try:
        _store().save(_conversations())
    except OSError as exc:  # a read-only home: the conversation still lives in this browser session
        st.toast(f"Could not keep the conversation on disk: {exc}")


def _open(conversation_id: str) -> None:
    st.session_state["chat.current"] = conversation_id
    st.session_state.pop(f"{SLOT}.job", None)


def _start_new() -> None:
    conversations = _conversations()
    empty = next((c for c in conversations if not c.messages), None)
    fresh = empty or new_conversation()
    if empty is None:
        conversations.insert(0, fresh)
    _open(fresh.id)


def _delete(conversation_id: str) -> None:
    conversations = [c for c in _conversations() if c.id != conversation_id] or [new_conversation()]
    st.session_state["chat.conversations"] = conversations
    _open(conversations[0].id)
    _save()


def _conversation_list() -> None:
    st.button("New conversation", icon=":material/add:", on_click=_start_new, key="chat.new", width="stretch")
    current = _current()
    for conversation in _conversations():
        if not conversation.messages:  # a new, empty conversation: the button above opens it
            continue
        st.button(
            conversation.title,
            key=f"chat.open.{conversation.id}",
            on_click=_open,
            args=(conversation.id,),
            type="primary" if conversation.id == current.id else "tertiary",
            width="stretch",
        )
    if current.messages:
        st.button(
            "Delete this conversation",
            icon=":material/delete:",
            key="chat.delete",
            on_click=_delete,
            args=(current.id,),
            type="tertiary",
        )


def _settings(schema: dict, conversation: Conversation) -> dict:
    with st.expander("System prompt and sampling", expanded=False):
        system = st.text_area(
            "System prompt",
            value=conversation.system,
            key=f"chat.system.{conversation.id}",
            height=80,
            placeholder="You are a concise, helpful assistant.",
            help=field_help(schema, "system"),
        )
        conversation.system = system
        cols = st.columns(2)
        low, high = field_bounds(schema, "temperature")
        temperature = cols[0].slider(
            "Temperature",
            float(low or 0.0),
            float(high or 2.0),
            float(field_default(schema, "temperature", 0.7) or 0.7),
            0.05,
            key="chat.temperature",
            help=field_help(schema, "temperature"),
        )
        low, high = field_bounds(schema, "max_tokens")
        max_tokens = cols[1].number_input(
            "Max tokens",
            int(low or 1),
            int(high or 4096),
            int(field_default(schema, "max_tokens", 256) or 256),
            32,
            key="chat.max_tokens",
            help=field_help(schema, "max_tokens"),
        )
    return {"system": system.strip() or None, "temperature": temperature, "max_tokens": int(max_tokens)}


def _reply(conversation: Conversation, job_id: str) -> None:
    """Stream the assistant's reply; once it ends, keep it (even a cancelled part) in the conversation."""
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
        conversation.add("assistant", state.text, note)
        _save()
    st.rerun()


def render(client, app: dict) -> None:
    st.title("Chat")
    schema = app.get("input_schema") or {}
    side, main = st.columns([1, 3], gap="medium")
    with side:
        st.markdown("**Conversations**")
        _conversation_list()
    conversation = _current()
    with main:
        sampling = _settings(schema, conversation)
        for message in conversation.messages:
            with st.chat_message(message["role"]):
                st.markdown(safe_markdown(message["content"]))
                if message.get("note"):
                    st.caption(message["note"])
        if error := st.session_state.pop("chat.error", None):
            st.error(escape_text(error))
        prompt = st.chat_input("Message Vireo")
        if prompt:
            conversation.add("user", prompt)
            with st.chat_message("user"):
                st.markdown(safe_markdown(prompt))
            messages = [{"role": m["role"], "content": m["content"]} for m in conversation.messages]
            if start_job(SLOT, "chat", {"messages": messages, **sampling}):
                _save()
            else:
                conversation.messages.pop()
        if job_id := current_job(SLOT):
            _reply(conversation, job_id)


PAGE = AppPage(render=render, icon=":material/chat:", order=20)
