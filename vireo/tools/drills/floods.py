"""Floods and tenant probes: one key floods submissions, tenants push past their limits and reach
for each other's jobs, collections and keys.

- flood: 2,000 submissions (short: 200) from one key, 32 at a time, against a rate limit of RPM per
  minute. Held when every reply is 202 or 429, every 429 carries Retry-After (1-60 s), the accepted
  count is between RPM and RPM x (started minutes of the flood) with no tolerance (the sliding window
  is one atomic Lua call in Redis, so it cannot overshoot; a flood shorter than a minute gets exactly
  RPM), `/healthz` answers 200 all through it, another tenant's submissions all get 202, and
  `/metrics` counts the 429s.
- concurrency: a key whose tenant may hold 3 jobs bursts 12 long ones: 3 accepted, 9 refused, never
  more than 3 active, and a slot frees once a job is cancelled.
- tokens: a tenant with a tiny daily budget runs jobs one by one until refused; nothing is admitted
  once the budget is spent, and Retry-After points at UTC midnight.
- probes: tenant-b's key on every route that names tenant-a's job or collection → 404 each; jobs
  of tenant-b that reach for tenant-a's job (judge) or collection (rag) fail as not found; a user
  key on the admin routes → 403; the raw key made by the admin API is in neither Redis nor its AOF.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
import uuid

import httpx
import redis

from vireo.platform.keys import digest
from vireo.platform.limits import seconds_to_utc_midnight
from vireo.tools.drills.result import DrillResult
from vireo.tools.drills.stack import ADMIN_KEY, OTHER_KEY, USER_KEY, Stack

RPM = 100
ECHO = {"app": "echo", "input": {"text": "flood"}}
LONG_CHAT = {"app": "chat", "input": {"prompt": "Write a long story about a lighthouse keeper.", "max_tokens": 400}}


def run(short: bool) -> DrillResult:
    result = DrillResult(name="floods")
    # the concurrency limit is set well above the flood's RPM so the flood meets the rate limit alone
    with Stack(
        env={"VIREO_RATE_LIMIT_RPM": str(RPM), "VIREO_MAX_CONCURRENT_JOBS": "1000", "VIREO_TOKENS_PER_DAY": "0"}
    ) as stack:
        asyncio.run(_flood(stack, result, 200 if short else 2000))
        _concurrency(stack, result)
        _tokens(stack, result, attempts=4 if short else 8)
        _probes(stack, result)
    return result.done()


def _admin(stack: Stack) -> httpx.Client:
    return stack.client(ADMIN_KEY)


def _new_key(stack: Stack, tenant: str, **limits) -> str:
    with _admin(stack) as admin:
        reply = admin.post("/v1/admin/keys", json={"tenant": tenant, "name": "floods drill", **limits})
        reply.raise_for_status()
        return reply.json()["key"]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


async def _flood(stack: Stack, result: DrillResult, total: int, concurrency: int = 32) -> None:
    replies: list[tuple[int, str | None, str]] = []
    health: list[tuple[int, float]] = []
    other: list[int] = []
    pending = iter(range(total))
    flooding = True

    async def flooder(client: httpx.AsyncClient) -> None:
        for _ in pending:
            reply = await client.post("/v1/jobs", json=ECHO)
            replies.append((reply.status_code, reply.headers.get("Retry-After"), reply.text[:300]))

    async def health_poller(client: httpx.AsyncClient) -> None:
        while flooding:
            started = time.perf_counter()
            try:
                code = (await client.get("/healthz", timeout=10)).status_code
            except httpx.HTTPError:
                code = 0
            health.append((code, (time.perf_counter() - started) * 1000))
            await asyncio.sleep(0.05)

    async def other_tenant(client: httpx.AsyncClient) -> None:
        while flooding and len(other) < 10:
            other.append((await client.post("/v1/jobs", json=ECHO)).status_code)
            await asyncio.sleep(0.2)

    headers = {"Authorization": f"Bearer {USER_KEY}"}
    async with (
        httpx.AsyncClient(
            base_url=stack.url, headers=headers, timeout=60, limits=httpx.Limits(max_connections=concurrency)
        ) as flood_client,
        httpx.AsyncClient(base_url=stack.url, timeout=60) as health_client,
        httpx.AsyncClient(
            base_url=stack.url, headers={"Authorization": f"Bearer {OTHER_KEY}"}, timeout=60
        ) as other_client,
    ):
        watchers = [asyncio.create_task(health_poller(health_client)), asyncio.create_task(other_tenant(other_client))]
        started = time.perf_counter()
        await asyncio.gather(*[flooder(flood_client) for _ in range(concurrency)])
        seconds = time.perf_counter() - started
        flooding = False
        await asyncio.gather(*watchers)

    codes = [code for code, _, _ in replies]
    accepted, refused = codes.count(202), codes.count(429)
    windows = max(1, math.ceil(seconds / 60))
    retry_afters = [int(r) for code, r, _ in replies if code == 429 and r and r.isdigit()]
    latencies = [ms for _, ms in health]
    result.facts["flood"] = {
        "submitted": total,
        "concurrency": concurrency,
        "seconds": round(seconds, 2),
        "requests_per_s": round(total / seconds, 1),
        "rate_limit_rpm": RPM,
        "accepted": accepted,
        "refused_429": refused,
        "other_statuses": sorted({c for c in codes if c not in (202, 429)}),
        "retry_after_s_min_max": [min(retry_afters, default=None), max(retry_afters, default=None)],
        "healthz_checks": len(health),
        "healthz_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
        "healthz_ms_p99": round(_percentile(latencies, 0.99), 1),
        "healthz_ms_max": round(max(latencies, default=0), 1),
        "other_tenant_statuses": other,
    }
    result.check(set(codes) <= {202, 429}, f"flood: every reply is 202 or 429 (got {sorted(set(codes))})")
    result.check(
        refused > 0 and len(retry_afters) == refused and all(1 <= r <= 60 for r in retry_afters),
        f"flood: {refused} 429s, each with Retry-After in 1-60 s ({len(retry_afters)} had one)",
    )
    result.check(
        RPM <= accepted <= RPM * windows,
        f"flood: accepted {accepted} of {total} in {seconds:.1f} s; the limit allows {RPM} per minute",
    )
    message = next((text for code, _, text in replies if code == 429), "")
    result.check(
        f"the limit is {RPM} per minute" in message and "VIREO_RATE_LIMIT_RPM" in message,
        f"flood: the 429 says which limit and setting: {message[:200]!r}",
    )
    result.check(
        len(health) > 0 and all(code == 200 for code, _ in health),
        f"flood: /healthz answered 200 throughout ({sum(c == 200 for c, _ in health)}/{len(health)})",
    )
    result.check(
        len(other) > 0 and all(code == 202 for code in other),
        f"flood: tenant-b's submissions during the flood were accepted ({other})",
    )
    with _admin(stack) as admin:
        metrics = admin.get("/metrics").text
    counted = next(
        (
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith('vireo_requests_limited_total{limit="rpm",tenant="tenant-a"}')
        ),
        0,
    )
    result.check(counted == refused, f"flood: /metrics counts the 429s ({counted:.0f} counted, {refused} sent)")


def _concurrency(stack: Stack, result: DrillResult, limit: int = 3, burst: int = 12) -> None:
    key = _new_key(stack, "tenant-c", concurrent=limit)
    with stack.client(key) as client:

        async def burst_submit() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=stack.url, headers=client.headers, timeout=60) as aclient:
                return await asyncio.gather(*[aclient.post("/v1/jobs", json=LONG_CHAT) for _ in range(burst)])

        replies = asyncio.run(burst_submit())
        accepted = [r.json()["id"] for r in replies if r.status_code == 202]
        refused = [r for r in replies if r.status_code == 429]
        active_seen = [client.get("/v1/limits").json()["concurrent_jobs"]["used"] for _ in range(10)]
        message = refused[0].json()["detail"] if refused else ""
        result.facts["concurrency"] = {
            "limit": limit,
            "burst": burst,
            "accepted": len(accepted),
            "refused_429": len(refused),
            "active_seen": sorted(set(active_seen)),
            "message": message,
        }
        result.check(
            len(accepted) == limit and len(refused) == burst - limit,
            f"concurrency: a burst of {burst} with a limit of {limit}: {len(accepted)} accepted",
        )
        result.check(
            all(r.headers.get("Retry-After", "").isdigit() for r in refused)
            and f"tenant-c has {limit} jobs queued or running; the limit is {limit}" in message,
            f"concurrency: 429s carry Retry-After and say why: {message[:160]!r}",
        )
        result.check(max(active_seen) <= limit, f"concurrency: never more than {limit} active ({active_seen})")
        for job_id in accepted:
            client.delete(f"/v1/jobs/{job_id}")
        deadline, freed = time.time() + 20, None
        while time.time() < deadline and freed is None:
            reply = client.post("/v1/jobs", json=ECHO)
            freed = reply if reply.status_code == 202 else None
            time.sleep(0.2)
        result.check(freed is not None, "concurrency: a slot frees once the tenant's jobs are cancelled")


def _wait_done(client: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    return job


def _tokens(stack: Stack, result: DrillResult, attempts: int, budget: int = 60) -> None:
    key = _new_key(stack, "tenant-d", tokens_per_day=budget)
    # every job spends its 24 new tokens (end-of-sequence ignored), so the budget is spent within the attempts
    # whatever the model says (a reply that ended at 7 tokens once left it unspent after four)
    job = {
        "app": "chat",
        "input": {"prompt": "Count from one to twenty.", "max_tokens": 24},
        "options": {"ignore_eos": True},
    }
    admitted_over_budget, refusal, used_before = 0, None, []
    with stack.client(key) as client:
        for _ in range(attempts):
            used = client.get("/v1/limits").json()["tokens_per_day"]["used"]
            used_before.append(used)
            reply = client.post("/v1/jobs", json=job)
            if reply.status_code == 429:
                refusal = reply
                break
            admitted_over_budget += used >= budget
            _wait_done(client, reply.json()["id"])
        final_used = client.get("/v1/limits").json()["tokens_per_day"]["used"]
    result.facts["tokens"] = {
        "budget": budget,
        "used_before_each_submit": used_before,
        "used_at_end": final_used,
        "refused": refusal is not None,
        "retry_after_s": refusal.headers.get("Retry-After") if refusal else None,
    }
    result.check(refusal is not None, f"tokens: a spent budget of {budget} refuses new jobs (used {used_before})")
    result.check(admitted_over_budget == 0, f"tokens: {admitted_over_budget} jobs admitted after the budget was spent")
    if refusal is not None:
        wait = int(refusal.headers.get("Retry-After", "0"))
        result.check(
            abs(wait - seconds_to_utc_midnight()) <= 120 and "resets at 00:00 UTC" in refusal.json()["detail"],
            f"tokens: Retry-After {wait} s points at UTC midnight",
        )


def _probes(stack: Stack, result: DrillResult) -> None:
    # a second key of tenant-a: USER_KEY spent its minute in the flood, and a tenant's keys share its jobs
    owner, intruder = stack.client(_new_key(stack, "tenant-a")), stack.client(OTHER_KEY)
    with owner, intruder:
        job_id = owner.post("/v1/jobs", json={"app": "echo", "input": {"text": "tenant-a's secret"}}).json()["id"]
        _wait_done(owner, job_id)
        last_event = owner.get(f"/v1/jobs/{job_id}/events").text.split("id: ")[1].split()[0]
        probes = {
            "GET job": intruder.get(f"/v1/jobs/{job_id}"),
            "DELETE job": intruder.delete(f"/v1/jobs/{job_id}"),
            "GET events": intruder.get(f"/v1/jobs/{job_id}/events"),
            "GET events after Last-Event-ID": intruder.get(
                f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": last_event}
            ),
        }
        collection = f"drill-{uuid.uuid4().hex[:8]}"
        has_collections = owner.post("/v1/collections", json={"name": collection}).status_code == 201
        if has_collections:
            probes |= {
                "GET collection": intruder.get(f"/v1/collections/{collection}"),
                "DELETE collection": intruder.delete(f"/v1/collections/{collection}"),
            }
        for what, reply in probes.items():
            result.check(reply.status_code == 404, f"probe: tenant-b {what} of tenant-a → {reply.status_code}")
        listed = [j["id"] for j in intruder.get("/v1/jobs", params={"limit": 100}).json()["jobs"]]
        result.check(job_id not in listed, "probe: tenant-a's job is not in tenant-b's job list")
        if has_collections:
            names = [c["name"] for c in intruder.get("/v1/collections").json()["collections"]]
            result.check(collection not in names, "probe: tenant-a's collection is not in tenant-b's list")
        reaching = {
            "judge": {"app": "judge", "input": {"job_ids": [job_id], "mode": "score"}},
            "rag": {"app": "rag", "input": {"collection": collection, "question": "What is the secret?"}},
        }
        for app, body in reaching.items():
            reply = intruder.post("/v1/jobs", json=body)
            job = _wait_done(intruder, reply.json()["id"]) if reply.status_code == 202 else {}
            error = (job.get("error") or "").lower()
            refused = reply.status_code in (404, 422) or (
                job.get("status") == "failed" and ("not found" in error or "no collection named" in error)
            )
            result.check(
                refused and "secret" not in str(job.get("result")),
                f"probe: tenant-b's {app} job on tenant-a's data → {reply.status_code} "
                f"{job.get('status')} {str(job.get('error'))[:120]}",
            )
        if has_collections:
            owner.delete(f"/v1/collections/{collection}")
        admin_routes = {
            "GET /v1/admin/keys": intruder.get("/v1/admin/keys"),
            "POST /v1/admin/keys": intruder.post("/v1/admin/keys", json={"tenant": "tenant-a", "role": "admin"}),
            "DELETE /v1/admin/keys/x": intruder.delete("/v1/admin/keys/x"),
            "GET /metrics": intruder.get("/metrics"),
        }
        for what, reply in admin_routes.items():
            result.check(reply.status_code == 403, f"probe: a user key on {what} → {reply.status_code}")
    _key_only_hashed(stack, result)


def _key_only_hashed(stack: Stack, result: DrillResult) -> None:
    key = _new_key(stack, "tenant-e")
    secret = key.split("_", 2)[2]
    client = redis.Redis.from_url(stack.redis_url)  # raw bytes: DUMP is binary
    in_redis = any(secret.encode() in name + (client.dump(name) or b"") for name in client.scan_iter())

    def aof() -> bytes:
        return b"".join(p.read_bytes() for p in (stack.dir / "redis").rglob("*") if p.is_file())

    deadline = time.time() + 10  # the AOF is written once a second: wait until the key's record is in it
    while digest(key).encode() not in aof() and time.time() < deadline:
        time.sleep(0.3)
    files = aof()
    result.check(
        not in_redis and digest(key).encode() in files and secret.encode() not in files,
        "keys: the raw key is in neither Redis nor its AOF, which holds the key's sha256",
    )
