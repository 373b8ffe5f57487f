"""Limits per key and tenant on a real API process: requests per minute, concurrent jobs, tokens per day.

The API here has no worker, so accepted jobs stay queued: they hold their tenant's concurrency slots
until cancelled, which is what the concurrency tests need.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis

from tests.conftest import API_KEY, _stop, start_api
from vireo.platform.limits import seconds_to_utc_midnight
from vireo.platform.store import JobStore

pytestmark = pytest.mark.stack  # starts an API process of its own

LIMITS_REDIS_URL = "redis://127.0.0.1:6379/4"  # this file's own database
ECHO = {"app": "echo", "input": {"text": "hello"}}


@pytest.fixture(scope="module")
def limited_api(platform_env, tmp_path_factory):
    """An API with a concurrency limit of 2 per tenant (rate and tokens set per key in the tests)."""
    redis.Redis.from_url(LIMITS_REDIS_URL).flushdb()
    env = {
        **platform_env,
        "REDIS_URL": LIMITS_REDIS_URL,
        "VIREO_QUEUE": f"limits-{uuid.uuid4().hex[:8]}",
        "VIREO_RATE_LIMIT_RPM": "1000",
        "VIREO_MAX_CONCURRENT_JOBS": "2",
        "VIREO_TOKENS_PER_DAY": "0",
    }
    proc, url = start_api(env, tmp_path_factory.mktemp("limits") / "api.log")
    yield url
    _stop(proc)
    redis.Redis.from_url(LIMITS_REDIS_URL).flushdb()


def new_key(url: str, **limits) -> httpx.Client:
    """A client with a fresh user key for a fresh tenant, made through the admin API."""
    reply = httpx.post(
        f"{url}/v1/admin/keys",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={"tenant": f"t-{uuid.uuid4().hex[:8]}", **limits},
    )
    assert reply.status_code == 201, reply.text
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {reply.json()['key']}"}, timeout=30)


def assert_429(reply: httpx.Response, *phrases: str) -> str:
    assert reply.status_code == 429, reply.text
    assert int(reply.headers["Retry-After"]) >= 1
    body = reply.json()
    message = body["detail"] if "detail" in body else body["error"]["message"]
    for phrase in phrases:
        assert phrase in message, message
    return message


def test_requests_over_the_rate_get_429_with_retry_after(limited_api):
    client = new_key(limited_api, rpm=3, concurrent=0)
    remaining = [client.post("/v1/jobs", json=ECHO).headers["X-RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    over = client.post("/v1/jobs", json=ECHO)
    assert_429(over, "the limit is 3 per minute", "key's own limit")
    assert 1 <= int(over.headers["Retry-After"]) <= 60


def test_the_rate_limit_covers_openai_and_collection_writes(limited_api):
    client = new_key(limited_api, rpm=1, concurrent=0)
    assert client.post("/v1/jobs", json=ECHO).status_code == 202
    completion = client.post("/v1/completions", json={"model": "default", "prompt": "hi", "max_tokens": 2})
    assert_429(completion, "the limit is 1 per minute")
    assert completion.json()["error"]["type"] == "rate_limit_error"
    assert_429(client.post("/v1/collections", json={"name": "docs"}), "per minute")


def test_a_limited_key_does_not_slow_other_tenants(limited_api):
    flooded, other = new_key(limited_api, rpm=1, concurrent=0), new_key(limited_api, concurrent=0)
    assert flooded.post("/v1/jobs", json=ECHO).status_code == 202
    assert flooded.post("/v1/jobs", json=ECHO).status_code == 429
    assert other.post("/v1/jobs", json=ECHO).status_code == 202


def test_a_tenant_at_its_concurrency_limit_gets_429_until_a_job_ends(limited_api):
    client = new_key(limited_api)  # the setting: 2 queued or running jobs
    first, second = (client.post("/v1/jobs", json=ECHO).json()["id"] for _ in range(2))
    tenant = client.get("/v1/limits").json()["tenant"]
    assert_429(
        client.post("/v1/jobs", json=ECHO),
        f"{tenant} has 2 jobs queued or running; the limit is 2 (VIREO_MAX_CONCURRENT_JOBS)",
    )
    assert client.get("/v1/limits").json()["concurrent_jobs"] == {
        "limit": 2,
        "used": 2,
        "remaining": 0,
        "reset_s": None,
    }
    assert client.delete(f"/v1/jobs/{first}").json()["status"] == "cancelled"
    assert client.post("/v1/jobs", json=ECHO).status_code == 202
    assert client.get(f"/v1/jobs/{second}").json()["status"] == "queued"


def test_a_burst_cannot_overshoot_the_concurrency_limit(limited_api):
    client = new_key(limited_api, concurrent=3)
    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda _: client.post("/v1/jobs", json=ECHO).status_code, range(24)))
    assert codes.count(202) == 3 and codes.count(429) == 21


def test_a_job_ended_outside_the_transition_frees_its_slot(limited_api):
    client = new_key(limited_api, concurrent=1)
    job_id = client.post("/v1/jobs", json=ECHO).json()["id"]
    assert client.post("/v1/jobs", json=ECHO).status_code == 429
    redis.Redis.from_url(LIMITS_REDIS_URL).hset(f"vireo:job:{job_id}", "status", "failed")
    assert client.post("/v1/jobs", json=ECHO).status_code == 202


def test_a_spent_token_budget_refuses_new_jobs_until_utc_midnight(limited_api):
    client = new_key(limited_api, tokens_per_day=100, concurrent=0)
    job_id = client.post("/v1/jobs", json=ECHO).json()["id"]

    async def record_usage():  # what the worker does when the engine reports a job's tokens
        store = JobStore(LIMITS_REDIS_URL)
        await store.add_usage(job_id, 60, 50, 0)
        await store.close()

    asyncio.run(record_usage())
    over = client.post("/v1/jobs", json=ECHO)
    assert_429(over, "has used 110 tokens today (UTC); the budget is 100 tokens per day", "resets at 00:00 UTC")
    assert abs(int(over.headers["Retry-After"]) - seconds_to_utc_midnight()) <= 60
    assert client.get("/v1/limits").json()["tokens_per_day"]["used"] == 110


def test_429s_are_counted_in_metrics(limited_api):
    client = new_key(limited_api, rpm=1, concurrent=0)
    client.post("/v1/jobs", json=ECHO)
    client.post("/v1/jobs", json=ECHO)
    tenant = client.get("/v1/limits").json()["tenant"]
    metrics = httpx.get(f"{limited_api}/metrics", headers={"Authorization": f"Bearer {API_KEY}"}).text
    assert f'vireo_requests_limited_total{{limit="rpm",tenant="{tenant}"}} 1.0' in metrics
