"""Cancellation: a queued job never runs; a running generation stops in the engine."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.conftest import API_KEY, start_api
from tests.platform.sse import read_events
from tests.platform.test_jobs import wait_done
from vireo.platform.runtime import execute_job
from vireo.platform.store import JobStore

pytestmark = pytest.mark.stack  # starts API processes of its own

LONG_PROMPT = {"prompt": "Count from 1 to 1000, separated by commas: 1, 2, 3, 4,", "max_tokens": 2000, "temperature": 0}


def wait_engine_idle(api, seconds: float) -> dict:
    deadline = time.time() + seconds
    while (stats := api.get("/v1/engine/stats").json())["running"] + stats["waiting"] and time.time() < deadline:
        time.sleep(0.3)
    return stats


def test_cancel_while_running_stops_the_engine(api):
    # the worker is shared by the session's files: jobs an earlier file left running end first
    assert wait_engine_idle(api, 120)["running"] == 0, "the shared worker's engine never went idle"
    job_id = api.post("/v1/jobs", json={"app": "chat", "input": LONG_PROMPT}).json()["id"]
    cancelled = {}

    def cancel_on_first_token(event):
        if event["event"] == "token" and not cancelled:
            cancelled["reply"] = api.delete(f"/v1/jobs/{job_id}").json()

    events = read_events(api, f"/v1/jobs/{job_id}/events", on_event=cancel_on_first_token)
    assert "reply" in cancelled, f"no token arrived: {events}"
    assert cancelled["reply"]["status"] == "running"
    assert events[-1]["event"] == "end" and events[-1]["data"]["status"] == "cancelled"
    tokens = [e for e in events if e["event"] == "token"]
    assert 0 < len(tokens) < 500, "generation should have stopped long before max_tokens"
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "cancelled" and job["timings"]["finished_at"]
    stats = wait_engine_idle(api, 15)
    assert stats["running"] == 0 and stats["waiting"] == 0, stats
    # the slot is free: the next job runs normally
    follow = api.post("/v1/jobs", json={"app": "chat", "input": {"prompt": "Hello", "max_tokens": 3}}).json()
    assert wait_done(api, follow["id"])["status"] == "succeeded"


@pytest.fixture()
def api_without_worker(platform_env, tmp_path):
    """An API whose queue no worker consumes, so jobs stay queued."""
    env = {**platform_env, "VIREO_QUEUE": platform_env["VIREO_QUEUE"] + "-idle"}
    proc, url = start_api(env, tmp_path / "api-idle.log")
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120) as client:
        yield client
    proc.terminate()
    proc.wait(10)


def test_cancel_while_queued_never_runs(api_without_worker, redis_url):
    api = api_without_worker
    job_id = api.post("/v1/jobs", json={"app": "chat", "input": {"prompt": "Hi", "max_tokens": 4}}).json()["id"]
    assert api.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
    assert api.delete(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
    # the worker receiving the task later must not run it (no engine is even touched)
    assert asyncio.run(_deliver(redis_url, job_id)) == "cancelled"
    events = read_events(api, f"/v1/jobs/{job_id}/events")
    assert "running" not in [e["data"].get("status") for e in events if e["event"] == "status"]
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "cancelled" and job["timings"]["started_at"] is None


def test_redelivered_finished_job_is_not_run_again(api, redis_url):
    job_id = api.post("/v1/jobs", json={"app": "chat", "input": {"prompt": "Hi", "max_tokens": 3}}).json()["id"]
    assert wait_done(api, job_id)["status"] == "succeeded"
    before = read_events(api, f"/v1/jobs/{job_id}/events")
    assert asyncio.run(_deliver(redis_url, job_id)) == "succeeded"
    assert read_events(api, f"/v1/jobs/{job_id}/events") == before


async def _deliver(redis_url: str, job_id: str) -> str:
    """What a worker does when the task (re)arrives, with no engine: it must stop before using one."""
    store = JobStore(redis_url)
    try:
        return await execute_job(None, store, job_id)  # type: ignore[arg-type]
    finally:
        await store.close()
