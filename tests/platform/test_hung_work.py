"""Work that never ends: a job past its time limit fails saying so; a hung worker stops announcing itself."""

from __future__ import annotations

import asyncio
import time

import pytest_asyncio
import redis as sync_redis
from pydantic import BaseModel

from vireo.apps.base import App
from vireo.platform.attempt_watch import AttemptWatch
from vireo.platform.attempts import Attempts
from vireo.platform.context import JobContext
from vireo.platform.event_writer import EventWriter
from vireo.platform.heartbeat import Heartbeat
from vireo.platform.redis_keys import worker_key
from vireo.platform.runtime import _run_app
from vireo.platform.store import JobStore

REDIS_URL = "redis://127.0.0.1:6379/8"  # this file's own database


class Nothing(BaseModel):
    pass


class NeverEnds(App[Nothing]):
    """An app whose work does not end by itself (a stuck generation, a sandbox run that hangs)."""

    name = "never-ends"
    Input = Nothing
    Output = Nothing

    async def run(self, ctx, input):
        await asyncio.sleep(3600)
        return Nothing()


@pytest_asyncio.fixture()
async def attempts():
    store = JobStore(REDIS_URL)
    await store.redis.flushdb()
    yield Attempts(store)
    await store.close()


async def test_a_job_past_its_time_limit_is_stopped_and_failed_with_the_reason(attempts):
    job_id = await attempts.store.create("tenant-a", "never-ends", {}, {})
    assert (await attempts.claim(job_id, 1, "w1")).outcome == "claimed"
    ctx = JobContext(
        engine=None,
        store=attempts.store,
        attempts=attempts,
        writer=EventWriter(attempts),
        job_id=job_id,
        app_name="never-ends",
    )
    started = time.monotonic()
    status, fields, event = await _run_app(
        NeverEnds(), ctx, await attempts.store.get(job_id), AttemptWatch(attempts, 0.05), max_job_s=0.5
    )
    await ctx.close()
    assert time.monotonic() - started < 10
    assert status == "failed" and "time limit (0.5 s, VIREO_MAX_JOB_S)" in fields["error"]
    assert event == ("error", {"error": fields["error"]})


async def test_without_a_limit_a_cancel_is_still_a_cancel(attempts):
    job_id = await attempts.store.create("tenant-a", "never-ends", {}, {})
    assert (await attempts.claim(job_id, 1, "w1")).outcome == "claimed"
    ctx = JobContext(
        engine=None,
        store=attempts.store,
        attempts=attempts,
        writer=EventWriter(attempts),
        job_id=job_id,
        app_name="never-ends",
    )
    running = asyncio.create_task(
        _run_app(NeverEnds(), ctx, await attempts.store.get(job_id), AttemptWatch(attempts, 0.05))
    )
    await asyncio.sleep(0.3)
    await attempts.store.request_cancel(job_id)
    status, fields, _event = await asyncio.wait_for(running, 10)
    await ctx.close()
    assert status == "cancelled" and "error" not in fields


def test_a_hung_worker_stops_beating_so_its_key_expires():
    client = sync_redis.Redis.from_url(REDIS_URL)
    loop_turns = {"ok": True}
    beat = Heartbeat(
        REDIS_URL,
        "hung-worker",
        every_s=0.1,
        ttl_s=0.5,
        held_jobs=lambda: {"job": 1},
        queue="q",
        alive=lambda: loop_turns["ok"],
    )
    beat.start()
    try:
        time.sleep(0.3)
        assert client.exists(worker_key("hung-worker"))
        loop_turns["ok"] = False  # the engine loop stopped turning
        time.sleep(1.0)
        assert not client.exists(worker_key("hung-worker"))
        loop_turns["ok"] = True  # it recovered: it announces itself again
        time.sleep(0.3)
        assert client.exists(worker_key("hung-worker"))
    finally:
        beat.stop()
