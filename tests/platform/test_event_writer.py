"""The worker's one event writer against a real Redis: each job's order kept, every job in one write."""

from __future__ import annotations

import asyncio

import pytest_asyncio

from vireo.platform.attempts import Attempts
from vireo.platform.event_writer import EventWriter
from vireo.platform.store import JobStore

REDIS_URL = "redis://127.0.0.1:6379/6"  # this file's own database


@pytest_asyncio.fixture()
async def writer():
    store = JobStore(REDIS_URL)
    await store.redis.flushdb()
    writer = EventWriter(Attempts(store))
    yield writer
    await writer.close()
    await store.close()


async def running_job(writer: EventWriter) -> str:
    job_id = await writer.store.create("tenant-a", "echo", {"text": "hi"}, {})
    assert (await writer.attempts.claim(job_id, 1, "w1")).outcome == "claimed"
    return job_id


async def events_of(writer: EventWriter, job_id: str) -> list[tuple[str, dict]]:
    """The events after `queued` and `running`."""
    return [(kind, data) for _id, kind, data in await writer.store.read_events(job_id, block_ms=10)][
        2:
    ]  # after queued, running


async def test_jobs_interleaved_keep_their_own_order_and_fields_wait_for_earlier_events(writer):
    a, b = await running_job(writer), await running_job(writer)
    writer.put((a, 1), "event", ("token", {"text": "a1"}))
    writer.put((b, 1), "event", ("progress", {"fraction": 0.5, "message": "half"}))
    writer.put((a, 1), "fields", {"progress_message": "after a1"})
    writer.put((a, 1), "event", ("tool_call", {"index": 0, "call": 0, "name": "f", "id": "c1"}))
    writer.put((b, 1), "event", ("token", {"text": "b1"}))
    writer.put((a, 1), "usage", (3, 4, 0))
    await asyncio.gather(writer.flush((a, 1)), writer.flush((b, 1)))
    assert await events_of(writer, a) == [
        ("token", {"text": "a1"}),
        ("tool_call", {"index": 0, "call": 0, "name": "f", "id": "c1"}),
    ]
    assert await events_of(writer, b) == [("progress", {"fraction": 0.5, "message": "half"}), ("token", {"text": "b1"})]
    record = await writer.store.get(a)
    assert record["progress_message"] == "after a1"
    assert (record["prompt_tokens"], record["completion_tokens"]) == ("3", "4")


async def test_tokens_queued_together_are_joined_per_choice_and_nothing_is_lost(writer):
    job = await running_job(writer)
    pieces = [("token", {"text": f"t{i}"} | ({"index": 1} if i % 3 == 2 else {})) for i in range(30)]
    for event in pieces:  # queued before the writer runs: one write carries them all
        writer.put((job, 1), "event", event)
    await writer.flush((job, 1))
    written = await events_of(writer, job)
    assert len(written) < len(pieces)
    assert all(kind == "token" for kind, _ in written)
    for index in (0, 1):
        sent = "".join(d["text"] for _, d in pieces if d.get("index", 0) == index)
        assert "".join(d["text"] for _, d in written if d.get("index", 0) == index) == sent
    # each joined event holds one choice's text only, in the order queued
    assert [d.get("index", 0) for _, d in written] == [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1]


async def test_a_superseded_attempt_writes_nothing_while_the_others_still_do(writer):
    moved, live = await running_job(writer), await running_job(writer)
    assert await writer.attempts.hand_back(moved, 1, "w1", "worker w1 stopped", max_attempts=3) == "requeued"
    writer.put((moved, 1), "event", ("token", {"text": "late"}))
    writer.put((live, 1), "event", ("token", {"text": "on time"}))
    await asyncio.gather(writer.flush((moved, 1)), writer.flush((live, 1)))
    assert ("token", {"text": "late"}) not in await events_of(writer, moved)
    assert await events_of(writer, live) == [("token", {"text": "on time"})]


async def test_a_reader_behind_a_fast_stream_gets_its_tokens_joined_per_choice_and_in_order(writer):
    job = await running_job(writer)
    written = [("token", {"text": "a"}), ("token", {"text": "b"}), ("token", {"text": "x", "index": 1})]
    written += [("tool_call", {"index": 0, "call": 0, "arguments": "{}"}), ("token", {"text": "c"})]
    written += [("token", {"text": "d"}), ("result", {"result": {}}), ("end", {"status": "succeeded"})]
    await writer.attempts.emit_batches([(job, 1, [event]) for event in written])  # one stream entry each
    followed = [(kind, data) async for _id, kind, data in writer.store.follow_events(job, block_ms=10)][2:]
    assert followed == [
        ("token", {"text": "ab"}),
        ("token", {"text": "x", "index": 1}),
        ("tool_call", {"index": 0, "call": 0, "arguments": "{}"}),
        ("token", {"text": "cd"}),
        ("result", {"result": {}}),
        ("end", {"status": "succeeded"}),
    ]
    last_id = [event_id async for event_id, _kind, _data in writer.store.follow_events(job, block_ms=10)][-1]
    assert last_id == (await writer.store.read_events(job, block_ms=10))[-1][0]  # resuming after it loses nothing
