"""The Jobs page's rows, filters and event timeline, on job views and events shaped as the API sends them."""

from __future__ import annotations

import datetime as dt

from vireo.ui.client import ServerEvent
from vireo.ui.job_history import JobFilter, event_time, job_row, timeline, values

T0 = dt.datetime(2026, 3, 2, 9, 30).timestamp()


def job(id: str, app: str, status: str, model: str, queued: float, **extra) -> dict:
    timings = {"queued_at": queued, "started_at": queued + 0.5, "first_token_at": queued + 1, "finished_at": queued + 3}
    usage = {"prompt_tokens": 40, "completion_tokens": 20, "cached_tokens": 0}
    return {"id": id, "app": app, "status": status, "model": model, "timings": timings, "usage": usage, **extra}


JOBS = [
    job("a", "chat", "succeeded", "smollm2-135m", T0),
    job("b", "code", "failed", "qwen", T0 + 86_400, error="boom"),
    job("c", "chat", "cancelled", "qwen", T0 + 2 * 86_400),
]


def test_a_row_says_when_how_long_and_how_many_tokens():
    row = job_row(JOBS[1])
    assert row["queued"] == "03-03 09:30:00" and row["seconds"] == 3.0
    assert (row["tokens in"], row["tokens out"], row["error"]) == (40, 20, "boom")


def test_filters_by_app_status_model_and_dates_and_empty_choices_keep_all():
    assert [j["id"] for j in JOBS if JobFilter().keeps(j)] == ["a", "b", "c"]
    assert [j["id"] for j in JOBS if JobFilter(apps=("chat",)).keeps(j)] == ["a", "c"]
    assert [j["id"] for j in JOBS if JobFilter(statuses=("failed", "cancelled"), models=("qwen",)).keeps(j)] == [
        "b",
        "c",
    ]
    days = JobFilter(since=dt.date(2026, 3, 3), until=dt.date(2026, 3, 3))
    assert [j["id"] for j in JOBS if days.keeps(j)] == ["b"]
    assert values(JOBS, "model") == ["qwen", "smollm2-135m"]


def test_the_timeline_folds_runs_of_tokens_and_times_events_by_their_stream_ids():
    start = 1_772_440_200_000
    events = [
        ServerEvent(f"{start}-0", "status", {"status": "queued"}),
        ServerEvent(f"{start + 40}-0", "status", {"status": "running"}),
        ServerEvent(f"{start + 50}-0", "progress", {"fraction": 0.25, "message": "chunk 1 of 4"}),
        ServerEvent(f"{start + 900}-0", "token", {"text": "Hello"}),
        ServerEvent(f"{start + 950}-0", "token", {"text": ", world"}),
        ServerEvent(f"{start + 1200}-0", "result", {"result": {"text": "Hello, world"}}),
        ServerEvent(f"{start + 1200}-1", "end", {"status": "succeeded"}),
    ]
    rows, curve = timeline(events)
    assert [(r["at (s)"], r["event"], r["what"]) for r in rows] == [
        (0.0, "status", "queued"),
        (0.04, "status", "running"),
        (0.05, "progress", "25% · chunk 1 of 4"),
        (0.9, "tokens", "2 token events, 12 characters"),
        (1.2, "result", "result stored"),
        (1.2, "end", "succeeded"),
    ]
    assert curve == [{"seconds": 0.9, "characters": 5}, {"seconds": 0.95, "characters": 12}]
    assert event_time("not-an-id") is None
