"""Limits per key and tenant: requests per minute, concurrent jobs, tokens per day.

- Requests per minute, per key: a sliding-window log in Redis (a sorted set of request times,
  Redis's own clock), so at most N requests are admitted in any 60 s, whatever the number of API
  processes. Refused requests are not logged, so a flood does not extend its own lockout.
- Concurrent jobs, per tenant: a job id is admitted into the tenant's set of queued-or-running
  jobs (`store.active_key`) by the same Lua call that checks the count, so a burst cannot overshoot;
  terminal transitions remove it (store.py). A submit that fails after admission, before its job is
  stored, gives the place back (`release_unstored`); where Redis cannot be reached for that either, the
  admission script drops the id once it is `STALE_RESERVATION_S` old with no record.
- Tokens per day, per tenant: prompt + completion tokens recorded by the worker
  (`store.add_usage`) on a counter per UTC day; new jobs are refused once it reaches the budget.

A key's own limits (`KeyLimits`) override the settings' defaults; 0 means unlimited.
"""

from __future__ import annotations

import datetime
import math
import uuid
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from vireo.platform.keys import KeyLimits, Principal
from vireo.platform.redis_keys import active_key, job_key, rate_key, tokens_key
from vireo.platform.store import TERMINAL, utc_day

WINDOW_MS = 60_000
CONCURRENCY_RETRY_S = 2  # a slot frees when one of the tenant's jobs ends: ask again soon
STALE_RESERVATION_S = 60  # an admitted id whose job record never appeared (the create failed)

# KEYS[1] the key's window; ARGV: limit, member. Returns {admitted 0|1, count, ms until a slot frees}
_SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - %(window)d)
local count = redis.call('ZCARD', KEYS[1])
local admitted = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[2])
  redis.call('PEXPIRE', KEYS[1], %(window)d)
  count = count + 1
  admitted = 1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local reset = %(window)d
if oldest[2] then reset = tonumber(oldest[2]) + %(window)d - now end
return {admitted, count, reset}
""" % {"window": WINDOW_MS}

# KEYS[1] the tenant's active jobs, KEYS[2] its token counter for today.
# ARGV: job id, now, concurrency limit, token budget. Returns {'ok'|'tokens'|'concurrent', number}
_ADMIT = """
local budget = tonumber(ARGV[4])
if budget > 0 then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used >= budget then return {'tokens', used} end
end
local limit = tonumber(ARGV[3])
if limit > 0 then
  local active = redis.call('ZCARD', KEYS[1])
  if active >= limit then
    -- drop ids whose job has ended or vanished, in case a status change bypassed the transition
    local terminal = {%(terminal)s}
    local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
    for i = 1, #entries, 2 do
      local status = redis.call('HGET', '%(job_prefix)s' .. entries[i], 'status')
      if (status and terminal[status]) or
         (not status and tonumber(entries[i + 1]) < tonumber(ARGV[2]) - %(stale)d) then
        redis.call('ZREM', KEYS[1], entries[i])
      end
    end
    active = redis.call('ZCARD', KEYS[1])
    if active >= limit then return {'concurrent', active} end
  end
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return {'ok', 0}
""" % {"terminal": ", ".join(f"{s} = true" for s in TERMINAL), "job_prefix": job_key(""), "stale": STALE_RESERVATION_S}

# KEYS[1] the tenant's active jobs; ARGV[1] a job id admitted whose submit failed. Only an id with no record
# leaves: a job stored after all (a reply lost on its way back) keeps its place until it ends
_RELEASE_UNSTORED = """
if redis.call('EXISTS', '%(job_prefix)s' .. ARGV[1]) == 1 then return 0 end
return redis.call('ZREM', KEYS[1], ARGV[1])
""" % {"job_prefix": job_key("")}


class LimitExceeded(Exception):
    """A request over one of its limits: answered 429 with `Retry-After`."""

    def __init__(self, limit: str, tenant: str, message: str, retry_after_s: int):
        super().__init__(message)
        self.limit, self.tenant, self.message = limit, tenant, message
        self.retry_after_s = max(1, int(retry_after_s))


@dataclass(frozen=True)
class RateState:
    limit: int
    used: int
    reset_s: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
        }


def seconds_to_utc_midnight(now: datetime.datetime | None = None) -> int:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    midnight = (now + datetime.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return math.ceil((midnight - now).total_seconds())


class Limiter:
    """Checks and counts a principal's requests and jobs against its limits."""

    def __init__(self, redis: aioredis.Redis, settings):
        self.redis = redis
        self.defaults = KeyLimits(
            rpm=settings.rate_limit_rpm, concurrent=settings.max_concurrent_jobs, tokens_per_day=settings.tokens_per_day
        )
        self._window = redis.register_script(_SLIDING_WINDOW)
        self._admit = redis.register_script(_ADMIT)
        self._release_unstored = redis.register_script(_RELEASE_UNSTORED)

    def effective(self, principal: Principal) -> KeyLimits:
        own = principal.limits
        return KeyLimits(
            **{
                name: own_value if (own_value := getattr(own, name)) is not None else getattr(self.defaults, name)
                for name in ("rpm", "concurrent", "tokens_per_day")
            }
        )

    def _source(self, principal: Principal, name: str, setting: str) -> str:
        return "this key's own limit" if getattr(principal.limits, name) is not None else setting

    async def hit(self, principal: Principal) -> RateState | None:
        """Count one request against the key's per-minute limit; None when unlimited."""
        limit = self.effective(principal).rpm
        if not limit:
            return None
        admitted, count, reset_ms = await self._window(
            keys=[rate_key(principal.key_id)], args=[limit, uuid.uuid4().hex]
        )
        state = RateState(limit=limit, used=int(count), reset_s=max(1, math.ceil(int(reset_ms) / 1000)))
        if not admitted:
            raise LimitExceeded(
                "rpm",
                principal.tenant,
                f"key {principal.key_id} (tenant {principal.tenant}) has made {state.used} requests in the last "
                f"minute; the limit is {limit} per minute "
                f"({self._source(principal, 'rpm', 'VIREO_RATE_LIMIT_RPM')}). "
                f"Retry in {state.reset_s} s.",
                state.reset_s,
            )
        return state

    async def admit_job(self, principal: Principal, now: float) -> str:
        """A new job id admitted into the tenant's active jobs; LimitExceeded if over a limit."""
        limits = self.effective(principal)
        job_id = uuid.uuid4().hex
        if not limits.concurrent and not limits.tokens_per_day:
            return job_id
        tenant = principal.tenant
        verdict, number = await self._admit(
            keys=[active_key(tenant), tokens_key(tenant, utc_day(now))],
            args=[job_id, now, limits.concurrent, limits.tokens_per_day],
        )
        if verdict == "tokens":
            wait = seconds_to_utc_midnight()
            raise LimitExceeded(
                "tokens",
                tenant,
                f"{tenant} has used {int(number):,} tokens today (UTC); the budget is {limits.tokens_per_day:,} "
                f"tokens per day ({self._source(principal, 'tokens_per_day', 'VIREO_TOKENS_PER_DAY')}). "
                f"It resets at 00:00 UTC, in {wait // 3600} h {wait % 3600 // 60} min.",
                wait,
            )
        if verdict == "concurrent":
            raise LimitExceeded(
                "concurrent",
                tenant,
                f"{tenant} has {int(number)} jobs queued or running; the limit is {limits.concurrent} "
                f"({self._source(principal, 'concurrent', 'VIREO_MAX_CONCURRENT_JOBS')}). Wait for one to "
                "finish or cancel one (DELETE /v1/jobs/{id}), then submit again.",
                CONCURRENCY_RETRY_S,
            )
        return job_id

    async def release_unstored(self, principal: Principal, job_id: str) -> None:
        """Give back the place `admit_job` took for `job_id` when its submit failed before the job was stored;
        best effort (with Redis away, the admission script's stale-entry sweep drops it later)."""
        try:
            await self._release_unstored(keys=[active_key(principal.tenant)], args=[job_id])
        except (RedisError, OSError):
            pass

    async def usage(self, principal: Principal, now: float) -> dict:
        """The principal's limits and how much of each is used now (for `GET /v1/limits`)."""
        limits = self.effective(principal)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcount(rate_key(principal.key_id), f"{(now * 1000) - WINDOW_MS}", "+inf")
            pipe.zcard(active_key(principal.tenant))
            pipe.get(tokens_key(principal.tenant, utc_day(now)))
            requests, active, tokens = await pipe.execute()
        return {
            "limits": limits,
            "requests_last_minute": int(requests),
            "active_jobs": int(active),
            "tokens_today": int(tokens or 0),
            "tokens_reset_s": seconds_to_utc_midnight(),
        }
