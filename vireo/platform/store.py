"""Job records and event streams in Redis: the one place job state lives.

A job is a hash (`vireo:job:<id>`) with a TTL, indexed per tenant in a sorted set by submit time.
Its events (status, progress, tokens, result) go to a capped Redis stream per job, so SSE clients
can resume from `Last-Event-ID`. Status changes are atomic compare-and-set transitions in Lua, so a
cancel racing a start, or a re-delivered task, can never move a finished job.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from vireo.inference.api import RequestTimes
from vireo.platform.redis_keys import QUEUED_KEY, STATS_KEY, active_key, events_key, job_key, tenant_key, tokens_key

TERMINAL = ("succeeded", "failed", "cancelled")
STATS_TTL_S = 60  # engine stats older than this are from a worker that is gone
# The engine's times of a job's first generation (`RequestTimes`), in its record beside queued_at, started_at,
# first_token_at and finished_at: where an attempt's time to first token went inside the engine
ENGINE_TIMES = {
    "received_at": "engine_received_at",
    "scheduled_at": "engine_scheduled_at",
    "first_token_at": "engine_first_token_at",
}


def engine_time_fields(times: RequestTimes) -> dict[str, float | None]:
    """The record's fields for the engine's times of a generation."""
    return {field: getattr(times, name) for name, field in ENGINE_TIMES.items()}


_TRANSITION = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
for i = 1, tonumber(ARGV[1]) do
  if ARGV[1 + i] == status then
    local n = 1 + tonumber(ARGV[1]) + 1
    redis.call('HSET', KEYS[1], 'status', ARGV[n])
    for j = n + 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[j], ARGV[j + 1]) end
    if %(terminal)s then  -- a job that ended no longer counts against its tenant's concurrency limit
      local job = redis.call('HMGET', KEYS[1], 'id', 'tenant')
      redis.call('ZREM', 'vireo:tenant:' .. job[2] .. ':active', job[1])  -- active_key(tenant)
    end
    return 1
  end
end
return 0
""" % {"terminal": " or ".join(f"ARGV[n] == '{s}'" for s in TERMINAL)}


def utc_day(at: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(at))


class JobStore:
    """Async access to job records and events; one instance per process and event loop."""

    def __init__(self, redis_url: str, ttl_s: int = 7 * 24 * 3600, events_maxlen: int = 10_000):
        # XREAD blocks up to 5 s at a time, so reads may take longer than redis-py 8's default 5 s timeout.
        # A pooled connection that went stale (Redis restarted) is retried once on a fresh one; an
        # unreachable Redis fails fast (ConnectionError → the API's 503) instead of 10 backed-off retries.
        self.redis = aioredis.from_url(
            redis_url,
            decode_responses=True,
            socket_timeout=30,
            socket_connect_timeout=5,
            health_check_interval=15,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
        self.ttl_s = ttl_s
        self.events_maxlen = events_maxlen
        self._transition = self.redis.register_script(_TRANSITION)

    async def close(self) -> None:
        await self.redis.aclose()

    async def create(
        self,
        tenant: str,
        app: str,
        input: dict,
        options: dict,
        job_id: str | None = None,
        now: float | None = None,
        model: str = "",
        queue: str = "",
        deliver: Sequence[tuple[str, tuple]] = (),
    ) -> str:
        """Store a queued job (`job_id`: one the limiter admitted) and count it as the tenant's active job;
        `model` (the served model's name, as clients see it) and `queue` say which model runs it, and where its
        messages go (the reaper re-queues it there). `deliver`: the Redis commands of its broker message
        (`TaskPublisher.delivery_commands`), run in the same transaction, so the job is stored and enqueued
        together or not at all."""
        job_id = job_id or uuid.uuid4().hex
        now = now or time.time()
        record = {
            "id": job_id,
            "tenant": tenant,
            "app": app,
            "status": "queued",
            "input": json.dumps(input),
            "options": json.dumps(options),
            "queued_at": now,
            "progress_fraction": 0.0,
            "progress_message": "",
            "attempt": 1,
            "model": model,
            "queue": queue,
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(job_key(job_id), mapping=record)
            pipe.expire(job_key(job_id), self.ttl_s)
            pipe.zadd(tenant_key(tenant), {job_id: now})
            pipe.expire(tenant_key(tenant), self.ttl_s)
            pipe.zadd(active_key(tenant), {job_id: now})
            pipe.expire(active_key(tenant), self.ttl_s)
            pipe.zadd(QUEUED_KEY, {job_id: now})
            queued = {"status": "queued", **({"model": model} if model else {})}
            pipe.xadd(events_key(job_id), {"event": "status", "data": json.dumps(queued)})
            pipe.expire(events_key(job_id), self.ttl_s)
            for command, args in deliver:
                getattr(pipe, command)(*args)
            await pipe.execute()
        return job_id

    async def get(self, job_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hgetall(job_key(job_id))
        return raw or None

    async def transition(self, job_id: str, from_states: tuple[str, ...], to_state: str, **fields: Any) -> bool:
        """Set status to `to_state` only if it is one of `from_states`; True if it moved."""
        args: list[Any] = [len(from_states), *from_states, to_state]
        for name, value in fields.items():
            args += [name, json.dumps(value) if isinstance(value, (dict, list)) else value]
        return await self._transition(keys=[job_key(job_id)], args=args) == 1

    async def update(self, job_id: str, **fields: Any) -> None:
        await self.redis.hset(job_key(job_id), mapping=fields)

    async def add_usage(self, job_id: str, prompt: int, completion: int, cached: int) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(job_key(job_id), "prompt_tokens", prompt)
            pipe.hincrby(job_key(job_id), "completion_tokens", completion)
            pipe.hincrby(job_key(job_id), "cached_tokens", cached)
            pipe.hget(job_key(job_id), "tenant")
            *_, tenant = await pipe.execute()
        if tenant:  # the tenant's daily token budget counts prompt + completion tokens
            day = tokens_key(tenant, utc_day(time.time()))
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.incrby(day, prompt + completion)
                pipe.expire(day, 2 * 24 * 3600)
                await pipe.execute()

    async def cancel_queued(self, job_id: str) -> bool:
        """Cancel the job if it is still queued (it ends here); False if it is not."""
        if await self.transition(job_id, ("queued",), "cancelled", finished_at=time.time(), cancel_requested=1):
            await self.emit(job_id, "end", {"status": "cancelled"})
            await self.redis.zrem(QUEUED_KEY, job_id)  # no longer waits (its message, if any, runs nothing)
            return True
        return False

    async def request_cancel(self, job_id: str) -> str:
        """Cancel: a queued job becomes cancelled at once; a running one is flagged for the worker."""
        if await self.cancel_queued(job_id):
            return "cancelled"
        await self.redis.hset(job_key(job_id), "cancel_requested", 1)
        record = await self.get(job_id)
        return record["status"] if record else "unknown"

    async def emit(self, job_id: str, event: str, data: dict) -> str:
        return await self.redis.xadd(
            events_key(job_id), {"event": event, "data": json.dumps(data)}, maxlen=self.events_maxlen, approximate=True
        )

    async def read_events(
        self, job_id: str, after: str = "0-0", block_ms: int = 15000, count: int = 256
    ) -> list[tuple[str, str, dict]]:
        """Events after stream id `after` (waits up to `block_ms` for new ones)."""
        reply = await self.redis.xread({events_key(job_id): after}, count=count, block=block_ms)
        out = []
        for _stream, entries in reply or []:
            for event_id, fields in entries:
                out.append((event_id, fields["event"], json.loads(fields["data"])))
        return out

    async def follow_events(
        self,
        job_id: str,
        after: str = "0-0",
        block_ms: int = 5000,
        between_reads: Callable[[], Awaitable[None]] | None = None,
    ) -> AsyncIterator[tuple[str, str, dict]]:
        """Events after `after`, then live ones as they come, until the job's "end" event.

        Token events of one choice that one read finds in a row come out as one (their texts joined,
        the last one's id), so a reader that fell behind a fast stream catches up in fewer, larger
        pieces. `between_reads` runs after every read (for example, to notice that a client went away).
        """
        while True:
            for event_id, kind, data in _join_tokens(await self.read_events(job_id, after, block_ms=block_ms)):
                after = event_id
                yield event_id, kind, data
                if kind == "end":
                    return
            if between_reads is not None:
                await between_reads()

    async def list_jobs(self, tenant: str, limit: int, before: float | None) -> list[dict[str, Any]]:
        """The tenant's jobs, newest first, submitted strictly before `before` (a cursor)."""
        max_score = f"({before}" if before is not None else "+inf"
        ids = await self.redis.zrevrangebyscore(tenant_key(tenant), max_score, "-inf", start=0, num=limit)
        records = []
        for job_id in ids:
            record = await self.get(job_id)
            if record:
                records.append(record)
        return records

    async def publish_stats(self, model: str, stats: dict) -> None:
        """A worker's engine numbers, under its model (the latest worker of a model to publish wins)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(STATS_KEY, model, json.dumps({**stats, "updated_at": time.time()}))
            pipe.expire(STATS_KEY, STATS_TTL_S)
            await pipe.execute()

    async def engine_stats(self, model: str) -> dict | None:
        """The engine numbers a worker of `model` published last, if within STATS_TTL_S."""
        raw = await self.redis.hget(STATS_KEY, model)
        stats = json.loads(raw) if raw else None
        return stats if stats and time.time() - stats.get("updated_at", 0) < STATS_TTL_S else None


def _join_tokens(events: list[tuple[str, str, dict]]) -> list[tuple[str, str, dict]]:
    joined: list[tuple[str, str, dict]] = []
    for event_id, kind, data in events:
        if joined and kind == "token" and joined[-1][1] == "token" and _same_choice(joined[-1][2], data):
            previous = joined[-1][2]
            joined[-1] = (event_id, kind, previous | {"text": previous["text"] + data["text"]})
        else:
            joined.append((event_id, kind, data))
    return joined


def _same_choice(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() <= {"text", "index"} and a.get("index", 0) == b.get("index", 0)
