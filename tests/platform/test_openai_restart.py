"""A streamed OpenAI reply whose job starts over on another worker never sends text twice."""

from __future__ import annotations

import pytest

from vireo.platform.api.openai_stream import Chunks, RestartDiverged


def streamed_text(*events: tuple[str, dict]) -> str:
    chunks = Chunks("chatcmpl-1", 0, "smollm2-135m")
    sent = [chunk for kind, data in events for chunk in chunks.on_event(kind, data)]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in sent)


def test_a_restart_that_reproduces_the_sent_text_continues_where_it_was():
    text = streamed_text(
        ("token", {"text": "Hello"}),
        ("token", {"text": " wor"}),
        ("attempt", {"attempt": 2, "reason": "worker w1 stopped"}),
        ("token", {"text": "Hel"}),
        ("token", {"text": "lo world"}),
        ("token", {"text": "!"}),
        ("result", {"result": {"text": "Hello world!", "finish_reason": "stop"}}),
    )
    assert text == "Hello world!"


def test_a_restart_that_says_something_else_ends_the_stream():
    with pytest.raises(RestartDiverged):
        streamed_text(
            ("token", {"text": "Hello"}),
            ("attempt", {"attempt": 2, "reason": "worker w1 stopped"}),
            ("token", {"text": "Goodbye"}),
        )


def test_a_restart_that_ends_short_of_the_sent_text_ends_the_stream():
    with pytest.raises(RestartDiverged):
        streamed_text(
            ("token", {"text": "Hello world"}),
            ("attempt", {"attempt": 2, "reason": "worker w1 stopped"}),
            ("token", {"text": "Hello"}),
            ("result", {"result": {"text": "Hello", "finish_reason": "stop"}}),
        )
