"""Redis outage: stop the stack's Redis, hit every endpoint, start it again, use the platform.

Each round:
- outage: every route that reads or writes Redis must answer 503 with `Retry-After` and a message
  naming Redis (OpenAI routes in OpenAI's error shape), `/healthz` 503 "degraded"; routes that need
  no Redis (apps, models, collections) must not fail. No 5xx other than those 503s.
- restart: Redis comes back on the same port (AOF); the very first request must succeed, and a job
  submitted then must complete. That needs the worker to reconnect by itself, which is the worker's
  part (heartbeats/reconnect, another change): if it does not, this drill says so.
- stale pool: Redis restarts between two requests (no request sees it down); the next one must
  still succeed, as every pooled connection is stale then (retried once on a fresh one).
"""

from __future__ import annotations

import time

import httpx

from vireo.tools.drills.result import DrillResult
from vireo.tools.drills.stack import ADMIN_KEY, USER_KEY, Stack

ECHO = {"app": "echo", "input": {"text": "outage"}}
CHAT = {"model": "default", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]}
MISSING = "0123456789abcdef0123456789abcdef"
NEEDS_REDIS = [  # (method, path, json body, key)
    ("POST", "/v1/jobs", ECHO, USER_KEY),
    ("GET", "/v1/jobs", None, USER_KEY),
    ("GET", f"/v1/jobs/{MISSING}", None, USER_KEY),
    ("DELETE", f"/v1/jobs/{MISSING}", None, USER_KEY),
    ("GET", f"/v1/jobs/{MISSING}/events", None, USER_KEY),
    ("GET", "/v1/engine/stats", None, USER_KEY),
    ("GET", "/v1/limits", None, USER_KEY),
    ("GET", "/metrics", None, ADMIN_KEY),
    ("GET", "/v1/admin/keys", None, ADMIN_KEY),
    ("POST", "/v1/chat/completions", CHAT, USER_KEY),
    ("POST", "/v1/chat/completions", {**CHAT, "stream": True}, USER_KEY),
    ("POST", "/v1/completions", {"model": "default", "prompt": "hi", "max_tokens": 2}, USER_KEY),
    ("POST", "/v1/collections", {"name": "outage"}, USER_KEY),
]
NO_REDIS = [("GET", "/v1/apps", None), ("GET", "/v1/models", None), ("GET", "/v1/collections", None)]
OPENAI = ("/v1/chat/", "/v1/completions", "/v1/models")


def run(short: bool) -> DrillResult:
    result = DrillResult(name="redis_outage")
    answer_s: list[float] = []
    with Stack() as stack, stack.client(USER_KEY, timeout=30) as user:
        result.check(_job_completes(user, 120), "a job completes before any outage")
        for round_number in range(1 if short else 3):
            _outage_round(stack, result, answer_s, round_number)
        _stale_pool(stack, result, user)
    result.facts.update(outage_answers=len(answer_s), slowest_503_s=round(max(answer_s, default=0), 3))
    return result.done()


def _outage_round(stack: Stack, result: DrillResult, answer_s: list[float], round_number: int) -> None:
    stack.stop_redis()
    try:
        for method, path, body, key in NEEDS_REDIS:
            started = time.monotonic()
            reply = _request(stack, key, method, path, body)
            answer_s.append(time.monotonic() - started)
            result.check(
                _is_clear_503(reply, path),
                f"round {round_number}: {method} {path} with Redis down → {_describe(reply)}",
            )
        health = _request(stack, USER_KEY, "GET", "/healthz", None)
        result.check(
            isinstance(health, httpx.Response)
            and health.status_code == 503
            and health.json().get("status") == "degraded"
            and "Retry-After" in health.headers,
            f"round {round_number}: /healthz with Redis down → {_describe(health)}",
        )
        for method, path, body in NO_REDIS:
            reply = _request(stack, USER_KEY, method, path, body)
            result.check(
                isinstance(reply, httpx.Response) and reply.status_code < 500,
                f"round {round_number}: {method} {path} (needs no Redis) → {_describe(reply)}",
            )
    finally:
        stack.start_redis()
    with stack.client(USER_KEY, timeout=30) as user:
        first = _request(stack, USER_KEY, "POST", "/v1/jobs", ECHO)
        result.check(
            isinstance(first, httpx.Response) and first.status_code == 202,
            f"round {round_number}: the first request after Redis returned → {_describe(first)}",
        )
        if isinstance(first, httpx.Response) and first.status_code == 202:
            status = _wait_done(user, first.json()["id"], 60)
            result.facts[f"round{round_number}_job_after_restart"] = status
            result.check(
                status == "succeeded",
                f"round {round_number}: a job submitted after the restart "
                f"completes within 60 s (the worker must reconnect): {status}",
            )


def _stale_pool(stack: Stack, result: DrillResult, user: httpx.Client) -> None:
    """Redis restarts between two requests: every pooled connection is stale, none is seen failing."""
    user.get("/v1/jobs")
    stack.stop_redis()
    stack.start_redis()
    for method, path, body, key in [("GET", "/v1/jobs", None, USER_KEY), ("POST", "/v1/jobs", ECHO, USER_KEY)]:
        reply = _request(stack, key, method, path, body)
        result.check(
            isinstance(reply, httpx.Response) and reply.status_code < 300,
            f"stale pool: {method} {path} right after a restart → {_describe(reply)}",
        )


def _request(stack: Stack, key: str, method: str, path: str, body) -> httpx.Response | Exception:
    """One request; a streamed reply is read only as far as its status and headers."""
    try:
        with stack.client(key, timeout=30) as client, client.stream(method, path, json=body) as reply:
            if reply.headers.get("content-type", "").startswith("application/json"):
                reply.read()
            return reply
    except httpx.HTTPError as exc:
        return exc


def _is_clear_503(reply, path: str) -> bool:
    if not isinstance(reply, httpx.Response) or reply.status_code != 503:
        return False
    retry_after = reply.headers.get("Retry-After", "")
    body = reply.json()
    message = body["error"]["message"] if path.startswith(OPENAI) else body.get("detail", "")
    return retry_after.isdigit() and int(retry_after) > 0 and "Redis" in message and "retry in" in message


def _describe(reply) -> str:
    if isinstance(reply, httpx.Response):
        body = reply.text[:160] if reply.is_closed else ""
        return f"{reply.status_code} Retry-After={reply.headers.get('Retry-After')} {body}"
    return f"{type(reply).__name__}: {reply}"


def _job_completes(client: httpx.Client, timeout: float) -> bool:
    reply = client.post("/v1/jobs", json=ECHO)
    return reply.status_code == 202 and _wait_done(client, reply.json()["id"], timeout) == "succeeded"


def _wait_done(client: httpx.Client, job_id: str, timeout: float) -> str:
    deadline, status = time.time() + timeout, "unknown"
    while time.time() < deadline:
        try:
            status = client.get(f"/v1/jobs/{job_id}").json()["status"]
        except (httpx.HTTPError, KeyError, ValueError):
            status = "unreadable"
        if status in ("succeeded", "failed", "cancelled"):
            return status
        time.sleep(0.3)
    return f"still {status} after {timeout:.0f}s"
