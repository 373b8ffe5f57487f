"""Chat: the session's history comes back for the next turn; long histories drop the oldest turns."""

from __future__ import annotations

import pytest

from vireo.apps.base import AppInputError
from vireo.apps.chat import ChatApp

APP = ChatApp()


async def test_a_turn_returns_the_history_to_send_next_time(run_app):
    history = [
        {"role": "user", "content": "My name is Ana."},
        {"role": "assistant", "content": "Hello Ana!"},
        {"role": "user", "content": "What is my name?"},
    ]
    out, ctx = await run_app(
        APP, {"messages": history, "system": "You are brief.", "session_id": "s-1", "max_tokens": 8, "temperature": 0}
    )
    assert out.session_id == "s-1"
    assert [m.role for m in out.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert out.messages[-1].content == out.text and "".join(ctx.emitted) == out.text


def test_the_oldest_turns_are_dropped_to_fit_keeping_system_and_last():
    messages = [{"role": "system", "content": "s"}] + [
        {"role": "user" if i % 2 == 0 else "assistant", "content": "word " * 50} for i in range(9)
    ]
    kept, dropped = ChatApp.fit(messages, budget=200, count_tokens=lambda text: len(text.split()))
    assert kept[0]["role"] == "system" and kept[-1] is messages[-1]
    assert dropped == len(messages) - len(kept) > 0
    assert sum(len(m["content"].split()) + 8 for m in kept) <= 200


def test_with_overflow_error_a_too_long_conversation_is_refused():
    job = ChatApp.Input(messages=[{"role": "user", "content": "word " * 300}], overflow="error")
    with pytest.raises(AppInputError, match="Drop older turns"):
        APP.validate_for_engine(job, 100, lambda text: len(text.split()))
