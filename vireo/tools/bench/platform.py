"""Platform overhead: API + queue + event delivery, and job submissions accepted per second.

Starts a real API server and a real Celery worker (as `make run` does) against Redis, then:
1. submissions/s: many concurrent `POST /v1/jobs` (echo app), counting 202s per second, from wrk
   (a C load generator, `apt install wrk`) so the client does not take the CPU it measures; the
   Python httpx client's figure is kept beside it;
2. overhead: submit → first token event at the client, minus the engine's own time
   (`first_token_at - started_at` recorded by the worker), for the echo app (no engine) and for the
   real model (summarize).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import redis

from vireo.platform.processes import start, stop, vireo_command, wait_http_ok, wait_worker_ready
from vireo.platform.redis_keys import STATS_KEY, tenant_key
from vireo.tools.machine import load_average, machine_info
from vireo.tools.paths import RESULTS

KEY = "bench-key"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def _submissions_per_s(url: str, total: int, concurrency: int) -> dict:
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {"app": "echo", "input": {"text": "ping"}}
    accepted = 0
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=30, limits=httpx.Limits(max_connections=concurrency)
    ) as client:

        async def worker(n: int):
            nonlocal accepted
            for _ in range(n):
                if (await client.post("/v1/jobs", json=body)).status_code == 202:
                    accepted += 1

        start = time.perf_counter()
        await asyncio.gather(*[worker(total // concurrency) for _ in range(concurrency)])
        elapsed = time.perf_counter() - start
    return {
        "client": "httpx (Python, same 2 cores)",
        "submitted": total // concurrency * concurrency,
        "accepted": accepted,
        "seconds": round(elapsed, 3),
        "submissions_per_s": round(accepted / elapsed, 1),
        "concurrency": concurrency,
    }


WRK_SCRIPT = """wrk.method = "POST"
wrk.body = '{"app": "echo", "input": {"text": "ping"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
"""


def _submissions_wrk(url: str, seconds: int, connections: int, accepted_so_far) -> dict:
    """The same POSTs from wrk, a C load generator, so the client does not eat the CPU it measures."""
    script = Path(f"/tmp/vireo-bench-{os.getpid()}.lua")
    script.write_text(WRK_SCRIPT % KEY)
    before = accepted_so_far()
    try:
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), f"{url}/v1/jobs"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        script.unlink(missing_ok=True)
    summary = re.search(r"(\d+) requests in ([\d.]+)s", out)
    if summary is None:
        raise RuntimeError(f"wrk printed no request summary:\n{out}")
    total, elapsed = int(summary.group(1)), float(summary.group(2))
    rejected = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    stored = accepted_so_far() - before  # jobs that really reached Redis, not just 202s
    return {
        "client": "wrk (C, 2 threads)",
        "submitted": total,
        "accepted": total - rejected,
        "jobs_stored": stored,
        "seconds": elapsed,
        "submissions_per_s": round((total - rejected) / elapsed, 1),
        "concurrency": connections,
    }


def _drain(url: str, timeout: float = 900) -> float:
    """Wait until a job submitted now has run: the worker has worked off the submission burst."""
    headers = {"Authorization": f"Bearer {KEY}"}
    start = time.time()
    job_id = httpx.post(f"{url}/v1/jobs", headers=headers, json={"app": "echo", "input": {"text": "last"}}).json()["id"]
    while httpx.get(f"{url}/v1/jobs/{job_id}", headers=headers).json()["status"] not in ("succeeded", "failed"):
        if time.time() - start > timeout:
            raise RuntimeError("the worker did not work off the submission burst")
        time.sleep(0.5)
    return round(time.time() - start, 1)


def _overhead(url: str, app: str, job_input: dict, options: dict, runs: int) -> dict:
    headers = {"Authorization": f"Bearer {KEY}"}
    overheads, engine_times = [], []
    with httpx.Client(base_url=url, headers=headers, timeout=300) as client:
        for _ in range(runs):
            t0 = time.time()
            job_id = client.post("/v1/jobs", json={"app": app, "input": job_input, "options": options}).json()["id"]
            first_event_at = None
            with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
                for line in response.iter_lines():
                    if line == "event: token" and first_event_at is None:
                        first_event_at = time.time()
                    if line == "event: end":
                        break
            job = client.get(f"/v1/jobs/{job_id}").json()
            t = job["timings"]
            engine = t["first_token_at"] - t["started_at"]
            if first_event_at is None:
                raise RuntimeError(f"job {job_id} ({app}) ended without streaming a token")
            engine_times.append(engine * 1000)
            overheads.append((first_event_at - t0 - engine) * 1000)
    return {
        "app": app,
        "runs": runs,
        "overhead_ms_p50": round(statistics.median(overheads), 2),
        "overhead_ms_p95": round(_percentile(overheads, 0.95), 2),
        "engine_first_token_ms_p50": round(statistics.median(engine_times), 2),
    }


def run_platform_benchmark(
    requests: int = 400, concurrency: int = 32, overhead_runs: int = 30, model_runs: int = 5, engine: str | None = None
) -> dict:
    port = 18000 + os.getpid() % 1000
    url = f"http://127.0.0.1:{port}"
    redis_url = os.environ.get("VIREO_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    redis.Redis.from_url(redis_url).flushdb()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "VIREO_API_KEY": KEY,
        "VIREO_QUEUE": f"bench-{uuid.uuid4().hex[:6]}",
        "HF_HUB_OFFLINE": "1",
        # this measures the platform's own overhead: no per-key or per-tenant limits in the way
        "VIREO_RATE_LIMIT_RPM": "0",
        "VIREO_MAX_CONCURRENT_JOBS": "0",
    }
    if engine:
        env["VIREO_ENGINE"] = engine
    api = start(vireo_command("serve", "api", "--port", str(port)), env, quiet=True)
    worker = start(vireo_command("serve", "worker"), env, quiet=True)
    try:
        wait_http_ok(f"{url}/healthz", 300, "the API", api)
        wait_worker_ready(redis_url, 300, worker)
        published = redis.Redis.from_url(redis_url).hvals(STATS_KEY)  # the one worker's engine numbers
        stats = json.loads(published[0])
        result: dict[str, Any] = {
            "benchmark": "platform",
            "date": time.strftime("%Y-%m-%d"),
            "machine": machine_info(packages=()),
            "engine": {"backend": stats["backend"], "model": stats["model"]},
            "targets": {"overhead_ms_p50": 10, "submissions_per_s": 500},
            "submissions_python_client": asyncio.run(_submissions_per_s(url, requests, concurrency)),
        }
        if shutil.which("wrk"):  # apt install wrk

            def jobs_of_bench_tenant():
                return redis.Redis.from_url(redis_url).zcard(tenant_key("default"))

            result["submissions"] = _submissions_wrk(url, 5, concurrency, jobs_of_bench_tenant)
        else:
            result["submissions"] = result["submissions_python_client"]
        result["drain_s"] = _drain(url)  # the burst must be done, or queue wait would count as overhead
        result["overhead_echo"] = _overhead(url, "echo", {"text": "hello world " * 8}, {}, overhead_runs)
        result["overhead_model"] = _overhead(
            url,
            "summarize",
            {"text": "The cat sat on the mat. " * 20, "length": "short"},
            {"max_tokens": 8},
            model_runs,
        )
        result["meets_targets"] = {
            "overhead_ms_p50": result["overhead_echo"]["overhead_ms_p50"] <= 10,
            "submissions_per_s": result["submissions"]["submissions_per_s"] >= 500,
        }
        result["machine"]["load_average_at_end"] = load_average()
        return result
    finally:
        stop([api, worker], grace_s=20)


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS / "platform.json"
    data = run_platform_benchmark()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps(data, indent=2))
