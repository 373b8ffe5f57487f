"""Durability: queued jobs survive a Redis restart, and the Redis `make run` starts keeps its data.

- Queued jobs: with no worker running, submit N echo jobs, restart the stack's Redis (AOF, fsync
  every second) — once with SIGTERM, once with kill -9 more than a second after the last write —
  and check every job still exists, still queued. Then start a worker: every job must complete
  (its record and its broker message both came back).
- The launcher: the command `make run` uses for its own redis-server has AOF on (everysec) in the
  folder it is given; and for real, a key written to it is there after a kill -9 and a restart.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import redis

from vireo.platform.launcher import embedded_redis_command, start_embedded_redis
from vireo.tools.drills.result import DrillResult
from vireo.tools.drills.stack import USER_KEY, Stack

FSYNC_WAIT_S = 1.5  # appendfsync everysec: a write older than a second is on disk
NO_LIMITS = {"VIREO_MAX_CONCURRENT_JOBS": "0", "VIREO_RATE_LIMIT_RPM": "0"}  # N queued jobs is the point


def run(short: bool) -> DrillResult:
    result = DrillResult(name="durability")
    jobs = 30 if short else 100
    submitted: list[str] = []
    with Stack(env=NO_LIMITS, workers=0) as stack, stack.client(USER_KEY, timeout=30) as user:
        for how in ("SIGTERM", "kill -9"):
            ids = [_submit(user, number) for number in range(jobs)]
            submitted += ids
            if how == "kill -9":
                time.sleep(FSYNC_WAIT_S)
            stack.stop_redis(hard=how == "kill -9")
            stack.start_redis()
            kept = sum(_status(user, job_id) == "queued" for job_id in ids)
            result.check(kept == jobs, f"Redis restarted ({how}): {kept}/{jobs} queued jobs still there")
            result.facts[f"kept_after_{how.replace(' ', '')}"] = f"{kept}/{jobs}"
        stack.start_worker()
        stack.wait_workers_ready()
        done = _wait_all_succeeded(user, submitted, 240)
        result.check(done == len(submitted), f"after the restarts a worker completed {done}/{len(submitted)} jobs")
        result.facts["completed_after_restarts"] = f"{done}/{len(submitted)}"
    _check_launcher(result)
    return result.done()


def _submit(user: httpx.Client, number: int) -> str:
    response = user.post("/v1/jobs", json={"app": "echo", "input": {"text": f"durable job {number}"}})
    response.raise_for_status()
    return response.json()["id"]


def _status(user: httpx.Client, job_id: str, patience_s: float = 15) -> str | None:
    """The job's status; a 5xx/503 right after the restart is retried (that is the outage drill's part)."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            response = user.get(f"/v1/jobs/{job_id}")
            if response.status_code < 500:
                return response.json().get("status") if response.status_code == 200 else None
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            return None
        time.sleep(0.3)


def _wait_all_succeeded(user: httpx.Client, ids: list[str], timeout_s: float) -> int:
    deadline, done = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline:
        done = sum(_status(user, job_id) == "succeeded" for job_id in ids)
        if done == len(ids):
            break
        time.sleep(1)
    return done


def _check_launcher(result: DrillResult) -> None:
    folder = Path(tempfile.mkdtemp(prefix="vireo-drill-home-")) / "redis"
    command = embedded_redis_command("redis-server", 6379, folder)
    flags = dict(zip(command[1::2], command[2::2]))
    result.check(
        flags.get("--appendonly") == "yes"
        and flags.get("--appendfsync") == "everysec"
        and flags.get("--dir") == str(folder),
        f"make run's own redis-server writes an AOF (everysec) in its folder: {' '.join(command)}",
    )
    try:
        url, proc = start_embedded_redis(folder)
        redis.Redis.from_url(url).set("vireo:drill:kept", "yes")
        time.sleep(FSYNC_WAIT_S)
        proc.kill()
        proc.wait(10)
        url, proc = start_embedded_redis(folder)
        kept = redis.Redis.from_url(url).get("vireo:drill:kept") == b"yes"
        proc.terminate()
        proc.wait(10)
    except (SystemExit, OSError, redis.RedisError, subprocess.SubprocessError) as exc:
        kept = False
        result.facts["launcher_error"] = str(exc)
    result.check(kept, "make run's own Redis keeps a key across a kill -9 and a restart")
    shutil.rmtree(folder.parent, ignore_errors=True)
