"""Folding a job's events into what the page shows, and the numbers drawn from its timings (no server)."""

from __future__ import annotations

from vireo.ui.client import ServerEvent, describe_detail
from vireo.ui.job_state import JobState, timing_summary


def fold(*events: tuple[str, dict]) -> JobState:
    state = JobState("job-1")
    for number, (kind, data) in enumerate(events):
        state.apply(ServerEvent(f"{number}-0", kind, data))
    return state


def test_tokens_accumulate_and_the_end_event_closes_the_job():
    state = fold(
        ("status", {"status": "running"}),
        ("token", {"text": "Hel"}),
        ("token", {"text": "lo"}),
        ("result", {"result": {"text": "Hello"}}),
        ("end", {"status": "succeeded"}),
    )
    assert (state.text, state.status, state.ended) == ("Hello", "succeeded", True)
    assert state.result == {"text": "Hello"} and state.last_event_id == "4-0"


def test_a_cancelled_job_keeps_the_text_it_had_streamed():
    state = fold(("token", {"text": "partial"}), ("end", {"status": "cancelled"}))
    assert state.status == "cancelled" and state.text == "partial" and state.result is None


def test_errors_and_progress_are_kept():
    state = fold(
        ("progress", {"fraction": 0.5, "message": "embedding"}),
        ("error", {"error": "boom"}),
        ("end", {"status": "failed"}),
    )
    assert (state.fraction, state.message, state.error, state.status) == (0.5, "embedding", "boom", "failed")


def test_timings_give_wait_first_token_total_and_speed():
    view = {
        "timings": {"queued_at": 100.0, "started_at": 101.0, "first_token_at": 102.0, "finished_at": 106.0},
        "usage": {"completion_tokens": 40},
    }
    assert timing_summary(view) == {"queue_s": 1.0, "first_token_s": 2.0, "total_s": 6.0, "tokens_per_s": 10.0}


def test_timings_of_a_job_that_never_started_are_left_out():
    assert timing_summary({"timings": {"queued_at": 100.0}, "usage": {}}) == {}


def test_field_errors_read_as_path_and_message():
    detail = [
        {"loc": ["body", "input", "length"], "msg": "Input should be 'short'"},
        {"loc": ["body"], "msg": "bad body"},
    ]
    assert describe_detail(detail) == "input.length: Input should be 'short'; bad body"


def test_an_attempt_event_starts_the_text_over():
    state = fold(
        ("status", {"status": "running"}),
        ("token", {"text": "dead worker's words"}),
        ("progress", {"fraction": 0.4, "message": "half"}),
        ("attempt", {"attempt": 2, "reason": "worker w1 stopped"}),
        ("status", {"status": "running"}),
        ("token", {"text": "Hello"}),
        ("result", {"result": {"text": "Hello"}}),
        ("end", {"status": "succeeded"}),
    )
    assert (state.text, state.fraction, state.message) == ("Hello", 0.0, "")
    assert (state.attempt, state.restart_reason, state.status) == (2, "worker w1 stopped", "succeeded")
