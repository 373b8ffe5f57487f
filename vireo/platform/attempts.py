"""Job attempts: which worker runs which attempt of a job, so that a job outlives the worker running it.

A job record carries `attempt` (1 at submit) and, while it runs, the `worker` that claimed it. Every
broker message names the attempt it was published for, and a worker runs a job only by claiming it:
an atomic move `queued@attempt → running` (Lua), so a stale or duplicate message finds nothing to
claim and a finished job is never run again. The events of a running attempt are fenced by its
number: once the job is handed back (the reaper saw its worker die, or the worker drained on
SIGTERM) as attempt n + 1, the old attempt's late writes are dropped instead of mixed into the new
attempt's stream, and its result can no longer finish the job.

Keys: `vireo:jobs:running` indexes running jobs (the reaper never scans the keyspace);
`vireo:jobs:queued` holds queued jobs by the time their message was published, so the reaper can
republish a message the broker lost (kombu pops a message with BRPOP before it records it as
unacked: a worker killed in between takes it along); `vireo:jobs:republish` is an outbox of
handed-back jobs whose new message is not published yet, so a crash between hand-back and publish
is repaired by the next sweep; `vireo:worker:<id>` is a worker's heartbeat (heartbeat.py).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from vireo.platform.redis_keys import (
    QUEUED_KEY,
    REPUBLISH_KEY,
    RUNNING_KEY,
    active_key,
    events_key,
    job_key,
)
from vireo.platform.store import ENGINE_TIMES, TERMINAL, JobStore

_CLAIM = """
-- KEYS: job, events, running index, queued index. ARGV: job id, attempt, worker, now, events maxlen
-- Returns the claimed record (HGETALL's flat list), or why not as a string.
local cur = redis.call('HMGET', KEYS[1], 'status', 'attempt')
if not cur[1] then return 'missing' end
if cur[1] ~= 'queued' then return cur[1] end
if (cur[2] or '1') ~= ARGV[2] then return 'stale' end
redis.call('HSET', KEYS[1], 'status', 'running', 'attempt', ARGV[2], 'worker', ARGV[3], 'started_at', ARGV[4])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'event', 'status', 'data', '{"status": "running"}')
return redis.call('HGETALL', KEYS[1])
"""

_FENCED_XADD = """
-- KEYS: job, events. ARGV: attempt, events maxlen, event, data
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return false end
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[3], 'data', ARGV[4])
"""

_FENCED_XADD_BATCHES = """
-- KEYS: job 1, events 1, job 2, events 2, ... ARGV: events maxlen, then for each job its attempt, its
-- number of events n and n event, data pairs. A job's events are appended in order while the attempt is
-- still the job's (all of them, or none). Returns 1 or 0 per job.
local written = {}
local a = 2
for j = 1, #KEYS, 2 do
  local n = tonumber(ARGV[a + 1])
  local current = redis.call('HGET', KEYS[j], 'attempt') == ARGV[a]
  if current then
    for i = a + 2, a + 2 * n, 2 do
      redis.call('XADD', KEYS[j + 1], 'MAXLEN', '~', ARGV[1], '*', 'event', ARGV[i], 'data', ARGV[i + 1])
    end
  end
  written[#written + 1] = current and 1 or 0
  a = a + 2 + 2 * n
end
return written
"""

_FINISH = """
-- KEYS: job, events, running index, tenant's active set.
-- ARGV: job id, attempt, final status, events maxlen, event, event data, then field/value pairs
local cur = redis.call('HMGET', KEYS[1], 'status', 'attempt')
if cur[1] ~= 'running' or cur[2] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[3])
for i = 7, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'event', ARGV[5], 'data', ARGV[6])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'event', 'end', 'data', cjson.encode({status = ARGV[3]}))
return 1
"""

_HAND_BACK = """
-- KEYS: job, events, running index, republish outbox, tenant's active set.
-- ARGV: job id, attempt, worker ('' = whichever), max attempts (0 = no cap), reason, failure message,
--       now, events maxlen
local cur = redis.call('HMGET', KEYS[1], 'status', 'attempt', 'worker', 'cancel_requested')
if cur[1] ~= 'running' or cur[2] ~= ARGV[2] or (ARGV[3] ~= '' and cur[3] ~= ARGV[3]) then return 'moved' end
redis.call('SREM', KEYS[3], ARGV[1])
local function event(kind, data)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], '*', 'event', kind, 'data', cjson.encode(data))
end
local attempt = tonumber(ARGV[2])
local final
if cur[4] == '1' then
  final = 'cancelled'
  event('status', {status = final})
elseif tonumber(ARGV[4]) > 0 and attempt >= tonumber(ARGV[4]) then
  final = 'failed'
  redis.call('HSET', KEYS[1], 'error', ARGV[6])
  event('error', {error = ARGV[6]})
end
if final then
  redis.call('HSET', KEYS[1], 'status', final, 'finished_at', ARGV[7])
  redis.call('ZREM', KEYS[5], ARGV[1])
  event('end', {status = final})
  return final
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'attempt', attempt + 1, 'worker', '', 'progress_fraction', 0,
           'progress_message', '', 'prompt_tokens', 0, 'completion_tokens', 0, 'cached_tokens', 0)
redis.call('HDEL', KEYS[1], 'started_at', 'first_token_at', ENGINE_TIMES)
event('attempt', {attempt = attempt + 1, reason = ARGV[5]})
redis.call('SADD', KEYS[4], ARGV[1])
return 'requeued'
""".replace("ENGINE_TIMES", ", ".join(f"'{field}'" for field in ENGINE_TIMES.values()))


@dataclass(frozen=True)
class Claim:
    """A claim's outcome: 'claimed' with the job's record as the claim left it (so the worker starts the
    job without reading it again), or why not: the job's status, 'stale' or 'missing'."""

    outcome: str
    record: dict[str, str] | None = None


def _state(reply: list[str | None], attempt: int) -> str:
    status, current, cancel = reply
    if status != "running" or current != str(attempt):
        return "superseded"
    return "cancel" if cancel == "1" else "running"


class Attempts:
    """Claim, fenced writes, finish and hand-back of job attempts, each one atomic script."""

    def __init__(self, store: JobStore):
        self.store = store
        self.redis = store.redis
        self._claim = self.redis.register_script(_CLAIM)
        self._xadd = self.redis.register_script(_FENCED_XADD)
        self._xadd_batches = self.redis.register_script(_FENCED_XADD_BATCHES)
        self._finish = self.redis.register_script(_FINISH)
        self._hand_back = self.redis.register_script(_HAND_BACK)

    async def claim(self, job_id: str, attempt: int, worker_id: str) -> Claim:
        """Claimed, with the record, if this attempt is now running on `worker_id`; else why not: the
        job's status, 'stale' (the job is at another attempt) or 'missing'."""
        reply = await self._claim(
            keys=[job_key(job_id), events_key(job_id), RUNNING_KEY, QUEUED_KEY],
            args=[job_id, attempt, worker_id, time.time(), self.store.events_maxlen],
        )
        if isinstance(reply, str):
            return Claim(reply)
        return Claim("claimed", dict(zip(reply[::2], reply[1::2])))

    async def emit(self, job_id: str, attempt: int, event: str, data: dict) -> str | None:
        """Append an event while `attempt` is still the job's attempt; None (dropped) once it is not."""
        return await self._xadd(
            keys=[job_key(job_id), events_key(job_id)],
            args=[attempt, self.store.events_maxlen, event, json.dumps(data)],
        )

    async def emit_batches(self, batches: list[tuple[str, int, list[tuple[str, dict]]]]) -> list[bool]:
        """Append each (job id, attempt, events) batch's events in order while that attempt is still its
        job's (all of a batch, or none), every job in one round trip: a worker streaming many jobs costs
        Redis one call per write, not one per job. Returns, per batch, whether it was written."""
        keys: list[str] = []
        args: list[Any] = [self.store.events_maxlen]
        for job_id, attempt, events in batches:
            keys += [job_key(job_id), events_key(job_id)]
            args += [attempt, len(events)]
            for event, data in events:
                args += [event, json.dumps(data)]
        return [bool(flag) for flag in await self._xadd_batches(keys=keys, args=args)]

    async def states(self, attempts: list[tuple[str, int]]) -> list[str]:
        """For each (job id, attempt): 'running' while the attempt should go on; 'cancel' when the user
        cancelled it; 'superseded' when the job moved on without it (handed back, or gone). One round
        trip for them all, so a worker watching many jobs polls Redis once, not once per job."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id, _attempt in attempts:
                pipe.hmget(job_key(job_id), "status", "attempt", "cancel_requested")
            replies = await pipe.execute()
        return [_state(reply, attempt) for reply, (_job_id, attempt) in zip(replies, attempts)]

    async def finish(
        self, job_id: str, attempt: int, tenant: str, status: str, fields: dict[str, Any], event: tuple[str, dict]
    ) -> bool:
        """End the attempt with its final status, fields and event, then `end`; False if it no longer
        owns the job (nothing is written)."""
        args: list[Any] = [job_id, attempt, status, self.store.events_maxlen, event[0], json.dumps(event[1])]
        for name, value in fields.items():
            args += [name, json.dumps(value) if isinstance(value, (dict, list)) else value]
        keys = [job_key(job_id), events_key(job_id), RUNNING_KEY, active_key(tenant)]
        return await self._finish(keys=keys, args=args) == 1

    async def hand_back(self, job_id: str, attempt: int, worker_id: str, reason: str, max_attempts: int = 0) -> str:
        """Take a running attempt away from its worker: 'requeued' as attempt + 1 (an `attempt` event
        tells clients to reset; the job joins the republish outbox), 'failed' once `max_attempts` ran
        (0: no cap), 'cancelled' if the user asked; 'moved' if it was no longer that attempt's."""
        failure = f"{reason}; gave up after {attempt} attempts (VIREO_MAX_ATTEMPTS={max_attempts})"
        tenant = await self.redis.hget(job_key(job_id), "tenant") or ""
        keys = [job_key(job_id), events_key(job_id), RUNNING_KEY, REPUBLISH_KEY, active_key(tenant)]
        return await self._hand_back(
            keys=keys,
            args=[job_id, attempt, worker_id, max_attempts, reason, failure, time.time(), self.store.events_maxlen],
        )

    async def running(self) -> list[dict[str, str]]:
        """Running jobs as {id, attempt, worker, started_at}; index entries of jobs that ended
        or expired are dropped on the way (a queued entry could be claimed again, so it stays)."""
        ids = sorted(await self.redis.smembers(RUNNING_KEY))
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(job_key(job_id), "status", "attempt", "worker", "started_at")
            rows = await pipe.execute()
        jobs, gone = [], []
        for job_id, (status, attempt, worker, started_at) in zip(ids, rows):
            if status == "running":
                jobs.append({"id": job_id, "attempt": attempt, "worker": worker or "", "started_at": started_at})
            elif status is None or status in TERMINAL:
                gone.append(job_id)
        if gone:
            await self.redis.srem(RUNNING_KEY, *gone)
        return jobs

    async def handed_back(self, only: set[str] | None = None) -> list[tuple[str, int, str]]:
        """(job id, attempt, queue) of outbox jobs that still wait for their message."""
        ids = [j for j in await self.redis.smembers(REPUBLISH_KEY) if only is None or j in only]
        waiting = await self._still_queued(ids)
        gone = set(ids) - {job_id for job_id, _, _ in waiting}  # cancelled, or claimed through a duplicate
        if gone:
            await self.redis.srem(REPUBLISH_KEY, *gone)
        return waiting

    async def queued_since(self, before: float, limit: int = 1000) -> list[tuple[str, int, str]]:
        """(job id, attempt, queue) of jobs still queued on a message published before `before`."""
        ids = await self.redis.zrangebyscore(QUEUED_KEY, "-inf", before, start=0, num=limit)
        waiting = await self._still_queued(ids)
        gone = set(ids) - {job_id for job_id, _, _ in waiting}  # claimed, cancelled or expired
        if gone:
            await self.redis.zrem(QUEUED_KEY, *gone)
        return waiting

    async def _still_queued(self, ids: list[str]) -> list[tuple[str, int, str]]:
        """(job id, attempt, queue) of those still queued; queue "" for a job stored before jobs named one."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(job_key(job_id), "status", "attempt", "queue")
            rows = await pipe.execute()
        return [
            (job_id, int(attempt), queue or "")
            for job_id, (status, attempt, queue) in zip(ids, rows)
            if status == "queued"
        ]

    async def published(self, job_id: str) -> None:
        """The job's current attempt has a message again (republished): out of the outbox, its
        queued time restarts."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.srem(REPUBLISH_KEY, job_id)
            pipe.zadd(QUEUED_KEY, {job_id: time.time()})
            await pipe.execute()
