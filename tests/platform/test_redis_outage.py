"""Redis down: every endpoint that needs it answers 503 with Retry-After; Redis back: the next request works.

The API runs against a private redis-server on a free port (AOF in a temp folder), which the test
stops and starts again on the same port, as a crash and a restart would.
"""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest
import redis

from tests.conftest import API_KEY, _stop, free_port, start_api

pytestmark = pytest.mark.stack  # a private redis-server and an API process

ADMIN_KEY = "outage-admin-key"
# every route that reads or writes Redis, with a request it accepts when Redis is up
NEEDS_REDIS = [
    ("POST", "/v1/jobs", {"app": "echo", "input": {"text": "hi"}}),
    ("GET", "/v1/jobs", None),
    ("GET", "/v1/jobs/0123456789abcdef", None),
    ("DELETE", "/v1/jobs/0123456789abcdef", None),
    ("GET", "/v1/jobs/0123456789abcdef/events", None),
    ("GET", "/v1/engine/stats", None),
    ("POST", "/v1/chat/completions", {"model": "default", "messages": [{"role": "user", "content": "hi"}]}),
    (
        "POST",
        "/v1/chat/completions",
        {"model": "default", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    ),
    ("POST", "/v1/completions", {"model": "default", "prompt": "hi", "max_tokens": 2}),
]


class PrivateRedis:
    """A redis-server of the test's own that can be stopped and started again on the same port."""

    def __init__(self, folder):
        self.port, self.folder, self.proc = free_port(), folder, None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                shutil.which("redis-server"),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(
            self.url, socket_connect_timeout=1, retry=redis.retry.Retry(redis.backoff.ConstantBackoff(0.1), 50)
        )
        client.ping()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def outage_stack(platform_env, tmp_path_factory):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (.ci/run installs it)")
    server = PrivateRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    env = {**platform_env, "REDIS_URL": server.url, "VIREO_API_KEY": ADMIN_KEY, "VIREO_API_KEYS": f"{API_KEY}:tenant-a"}
    proc, url = start_api(env, tmp_path_factory.mktemp("api") / "api.log")
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)
    yield server, client
    client.close()
    _stop(proc)
    if server.proc.poll() is None:
        server.stop()


def test_redis_down_is_503_with_retry_after_then_the_first_request_after_restart_succeeds(outage_stack):
    server, client = outage_stack
    assert client.post("/v1/jobs", json=NEEDS_REDIS[0][2]).status_code == 202  # pooled connections exist
    server.stop()
    try:
        for method, path, body in NEEDS_REDIS:
            reply = client.request(method, path, json=body)
            assert reply.status_code == 503, (method, path, reply.status_code, reply.text)
            assert int(reply.headers["Retry-After"]) > 0
            message = (
                reply.json()["error"]["message"]
                if path.startswith(("/v1/chat", "/v1/completions"))
                else reply.json()["detail"]
            )
            assert "Redis" in message and "unreachable" in message and "retry in" in message
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "degraded"
        assert "Retry-After" in health.headers
    finally:
        server.start()
    first = client.post("/v1/jobs", json=NEEDS_REDIS[0][2])
    assert first.status_code == 202, first.text
    assert client.get(f"/v1/jobs/{first.json()['id']}").json()["status"] == "queued"
    assert client.get("/healthz").json() == {"status": "ok"}


def test_routes_that_do_not_need_redis_keep_answering(outage_stack):
    server, client = outage_stack
    server.stop()
    try:
        assert client.get("/v1/models").status_code == 200
        assert client.get("/v1/apps").status_code == 200
    finally:
        server.start()


def test_a_restart_between_requests_does_not_fail_the_next_one(outage_stack):
    """Every pooled connection (job store and broker) is stale after the restart: each is retried once."""
    server, client = outage_stack
    assert client.post("/v1/jobs", json=NEEDS_REDIS[0][2]).status_code == 202
    assert client.get("/v1/jobs").status_code == 200
    server.stop()
    server.start()
    submitted = client.post("/v1/jobs", json=NEEDS_REDIS[0][2])
    assert submitted.status_code == 202, submitted.text
    assert client.get(f"/v1/jobs/{submitted.json()['id']}").status_code == 200


def test_an_event_stream_open_when_redis_goes_away_ends_cleanly(outage_stack):
    """The client sees the stream end (and reconnects with Last-Event-ID), not a broken connection."""
    server, client = outage_stack
    job_id = client.post("/v1/jobs", json=NEEDS_REDIS[0][2]).json()["id"]  # no worker here: it stays queued
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as reply:
        lines = reply.iter_lines()
        first = next(line for line in lines if line.startswith("event:"))
        server.stop()
        try:
            rest = list(lines)  # raises if the server drops the connection mid-response
        finally:
            server.start()
    assert first == "event: status" and not any(line.startswith("event:") for line in rest)
