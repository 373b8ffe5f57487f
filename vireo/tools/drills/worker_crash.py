"""Worker crash: `kill -9` a busy worker again and again under load; no job may be lost, stuck or run twice.

Two workers serve a queue fed continuously with echo jobs and short greedy generations (about a
dozen in flight). Each round waits until both workers are up, kills the one holding the most jobs
(its process group, as an OOM kill would), restarts it at once, and waits until the jobs it held
have ended, so that each crash is one to recover from (a job on three crashed workers in a row
fails by design: VIREO_MAX_ATTEMPTS). Then, for every job submitted:
- lost: it must end `succeeded` (nothing stays queued or running, nothing fails);
- stuck: each job the dead worker held must run again (or have ended) within 60 s of the kill;
- run twice: its stream has one `result` and one `end` (the finish writes both atomically with the
  `succeeded` transition), and the text streamed after its last `attempt` event is its result.
Facts: time to recovery (kill → handed back, kill → running again), attempts per job, latency.
The short version (CI) kills twice with sub-second heartbeats; the full one 20 times with the
default settings (heartbeat 2 s, worker TTL 10 s, reaper every 5 s), the numbers an operator gets.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections import Counter

from vireo.platform.processes import wait_until
from vireo.platform.redis_keys import RUNNING_KEY, events_key, job_key, worker_key
from vireo.tools.drills.result import DrillResult
from vireo.tools.drills.stack import Stack

STUCK_S = 60
FAST = {
    "VIREO_WORKER_HEARTBEAT_S": "0.5",
    "VIREO_WORKER_TTL_S": "2",
    "VIREO_REAPER_INTERVAL_S": "0.5",
    "VIREO_REDELIVERY_S": "4",
}
NO_LIMITS = {"VIREO_RATE_LIMIT_RPM": "0", "VIREO_MAX_CONCURRENT_JOBS": "0"}
IN_FLIGHT = 12
SENTENCES = [
    "Write one sentence about the sea.",
    "Name three colours.",
    "Say something about trees.",
    "Describe a cup of tea in one sentence.",
]


class Load:
    """Submits jobs from a thread, keeping about IN_FLIGHT unfinished, alternating echo and chat."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.jobs: dict[str, dict] = {}  # id → {app, input, submitted}
        self.refused: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        redis, n = self.stack.redis(), 0
        pending: list[str] = []  # ids of jobs still queued or running
        with self.stack.client(timeout=30) as api:
            while not self._stop.is_set():
                pending = [j for j in pending if redis.hget(job_key(j), "status") in ("queued", "running")]
                if len(pending) >= IN_FLIGHT:
                    time.sleep(0.1)
                    continue
                n += 1
                body = (
                    {"app": "echo", "input": {"text": f"echo number {n} " + "word " * (n % 20)}}
                    if n % 2
                    else {
                        "app": "chat",
                        "input": {"prompt": SENTENCES[n % len(SENTENCES)], "max_tokens": 24 + n % 16, "temperature": 0},
                    }
                )
                try:
                    reply = api.post("/v1/jobs", json=body)
                except Exception as exc:  # the API itself is not what this drill kills
                    self.refused.append(f"{type(exc).__name__}: {exc}")
                    continue
                if reply.status_code == 202:
                    self.jobs[reply.json()["id"]] = {**body, "submitted": time.time()}
                    pending.append(reply.json()["id"])
                else:
                    self.refused.append(f"{reply.status_code} {reply.text[:200]}")
                time.sleep(0.05)


def beats(stack: Stack) -> dict[str, dict]:
    """Heartbeats of the stack's live worker processes, by worker id (a killed one's key outlives it)."""
    redis = stack.redis()
    keys = list(redis.scan_iter(worker_key("*")))
    live = {proc.pid for proc in stack.workers if proc is not None and proc.poll() is None}
    found = {key.split(":", 2)[2]: json.loads(value) for key, value in zip(keys, redis.mget(keys)) if value}
    return {worker: beat for worker, beat in found.items() if beat["pid"] in live}


def held_by(stack: Stack, worker_id: str) -> dict[str, int]:
    """Jobs running on `worker_id` now, per the job records (the running index), with their attempt."""
    redis = stack.redis()
    held = {}
    for job_id in redis.smembers(RUNNING_KEY):
        worker, attempt = redis.hmget(job_key(job_id), "worker", "attempt")
        if worker == worker_id:
            held[job_id] = int(attempt)
    return held


def kill_busiest(stack: Stack) -> dict:
    """Wait for both workers, kill -9 the one holding most jobs, restart it; returns what was killed."""
    wait_until(lambda: len(beats(stack)) == len(stack.workers), 240, "every worker's heartbeat")
    deadline = time.time() + 20
    while True:
        live = beats(stack)
        worker_id, beat = max(live.items(), key=lambda item: len(item[1]["jobs"]))
        if beat["jobs"] or time.time() > deadline:
            break
        time.sleep(0.1)
    index = next(i for i, proc in enumerate(stack.workers) if proc is not None and proc.pid == beat["pid"])
    # The clock starts before the running jobs are read: a job that finishes between the read and the kill
    # then has its `end` after the kill's time, not before it (a stream id is whole milliseconds, hence floor).
    killed_ms = int(time.time() * 1000)
    held = held_by(stack, worker_id)
    stack.kill_worker(index)
    stack.restart_worker(index)
    return {"worker": worker_id, "ms": killed_ms, "jobs": held}


def ended(stack: Stack, job_ids, timeout: float) -> None:
    """Wait until none of the jobs is queued or running (the checks name any that still is)."""
    redis = stack.redis()
    try:
        wait_until(
            lambda: all(redis.hget(job_key(j), "status") not in ("queued", "running") for j in job_ids),
            timeout,
            "the jobs to end",
        )
    except RuntimeError:
        pass


def stream(stack: Stack, job_id: str) -> list[tuple[int, str, dict]]:
    return [
        (int(event_id.split("-")[0]), fields["event"], json.loads(fields["data"]))
        for event_id, fields in stack.redis().xrange(events_key(job_id))
    ]


def recovery(events: list[tuple[int, str, dict]], kill: dict, attempt: int) -> tuple[float | None, float | None]:
    """Seconds from the kill until the job was handed back, and until it ran again (or ended)."""
    handed = next((ms for ms, kind, data in events if kind == "attempt" and data["attempt"] == attempt + 1), None)
    after = handed if handed is not None else kill["ms"]
    rerun = next(
        (
            ms
            for ms, kind, data in events
            if ms >= after and (kind == "end" or (kind == "status" and data["status"] == "running"))
        ),
        None,
    )
    seconds = [None if ms is None else round((ms - kill["ms"]) / 1000, 2) for ms in (handed, rerun)]
    return seconds[0], seconds[1]


def run(short: bool) -> DrillResult:
    result = DrillResult(name="worker_crash")
    rounds = 2 if short else 20
    env = {**NO_LIMITS, **(FAST if short else {})}
    with Stack(env=env, workers=2, worker_concurrency=8) as stack:
        load = Load(stack)
        load.start()
        kills = []
        try:
            for _ in range(rounds):
                kills.append(kill_busiest(stack))
                ended(stack, kills[-1]["jobs"], 120)  # each crash recovers before the next one
        finally:
            load.stop()
        ended(stack, load.jobs, 240)
        check_jobs(stack, load, kills, result)
        result.facts["worker_log_tail"] = stack.log("worker0")[-1500:] if result.failed else ""
    return result.done()


def check_jobs(stack: Stack, load: Load, kills: list[dict], result: DrillResult) -> None:
    redis = stack.redis()
    attempts: Counter[int] = Counter()
    statuses: Counter[str | None] = Counter()
    latencies: list[float] = []
    for job_id, job in load.jobs.items():
        record = redis.hgetall(job_key(job_id))
        events = stream(stack, job_id)
        kinds = Counter(kind for _ms, kind, _data in events)
        statuses[record.get("status")] += 1
        attempts[int(record.get("attempt", 1))] += 1
        result.check(
            record.get("status") == "succeeded",
            f"job {job_id} ({job['app']}) lost: {record.get('status')} {record.get('error', '')}",
        )
        result.check(
            kinds["result"] <= 1 and kinds["end"] <= 1,
            f"job {job_id} completed twice: {kinds['result']} results, {kinds['end']} ends",
        )
        if record.get("status") == "succeeded":
            latencies.append(float(record["finished_at"]) - job["submitted"])
            text = json.loads(record["result"])["text"]
            last = max((i for i, (_ms, kind, _d) in enumerate(events) if kind == "attempt"), default=0)
            streamed = "".join(data["text"] for _ms, kind, data in events[last:] if kind == "token")
            expected = job["input"]["text"] if job["app"] == "echo" else streamed
            result.check(
                text.strip() == expected.strip() and streamed.strip() == text.strip(),
                f"job {job_id}: its last attempt streamed {streamed[:60]!r} but the result is {text[:60]!r}",
            )
    handed, reran = [], []
    for kill in kills:
        for job_id, attempt in kill["jobs"].items():
            to_handback, to_rerun = recovery(stream(stack, job_id), kill, attempt)
            result.check(
                to_rerun is not None and to_rerun <= STUCK_S,
                f"job {job_id} of killed worker {kill['worker']} stuck: ran again after {to_rerun} s",
            )
            if to_handback is not None:
                handed.append(to_handback)
            if to_rerun is not None:
                reran.append(to_rerun)
    result.facts.update(
        {
            "kills": len(kills),
            "jobs_submitted": len(load.jobs),
            "submissions_refused": len(load.refused),
            "refusals_sample": load.refused[:5],
            "final_statuses": dict(statuses),
            "jobs_held_by_killed_workers": sum(len(k["jobs"]) for k in kills),
            "attempts_distribution": {str(k): v for k, v in sorted(attempts.items())},
            "max_kill_to_handed_back_s": max(handed, default=None),
            "median_kill_to_handed_back_s": statistics.median(handed) if handed else None,
            "max_time_to_recovery_s": max(reran, default=None),
            "median_time_to_recovery_s": statistics.median(reran) if reran else None,
            "max_job_latency_s": round(max(latencies, default=0), 2),
            "lost_messages_republished": (stack.dir / "api.log")
            .read_text(errors="replace")
            .count("is gone from the broker"),
            "settings": "fast (heartbeat 0.5 s, TTL 2 s, reaper 0.5 s, redelivery 4 s)"
            if stack.env.get("VIREO_WORKER_TTL_S") == "2"
            else "defaults (heartbeat 2 s, TTL 10 s, reaper 5 s, redelivery 20 s)",
        }
    )
