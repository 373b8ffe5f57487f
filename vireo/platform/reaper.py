"""The reaper: running jobs whose worker is gone go back to the queue as a new attempt, or fail after
`max_attempts`. It runs in the API process (lifespan task), one replica at a time under a Redis lease.

A job is orphaned when its worker's heartbeat key has expired (killed, OOM, machine lost), or when
the worker is alive but its heartbeat, written after the job started, no longer lists the job (an
error after the claim left it behind). Hand-backs are compare-and-set on (status, attempt, worker),
so two reapers, or a reaper and a job finishing at that moment, never both act. Every
`redelivery_s` the reaper also republishes queued jobs whose message the broker lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

from redis.exceptions import RedisError

from vireo.platform.attempts import Attempts
from vireo.platform.job_outcome import report_from_store
from vireo.platform.queue import BrokerUnavailable, TaskPublisher, republish_handed_back, republish_lost
from vireo.platform.redis_keys import REAPER_LEASE_KEY, worker_key
from vireo.platform.settings import Settings
from vireo.platform.store import JobStore

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Reaper:
    """Sweeps the running-job index every `reaper_interval_s` while it holds the lease."""

    def __init__(self, store: JobStore, publisher: TaskPublisher, settings: Settings):
        self.attempts = Attempts(store)
        self.redis = store.redis
        self.publisher = publisher
        self.settings = settings
        self.token = uuid.uuid4().hex
        self.lease_ms = int(settings.reaper_interval_s * 3000)  # a dead replica's lease passes on after 3 sweeps
        self._renew = self.redis.register_script(_RENEW)
        self._release = self.redis.register_script(_RELEASE)
        self._next_lost_check = 0.0

    async def run(self) -> None:
        """Sweep until cancelled; a failed sweep (Redis away) is logged and tried again next time."""
        try:
            while True:
                try:
                    if await self._hold_lease():
                        await self.sweep()
                except (RedisError, OSError, BrokerUnavailable) as exc:
                    log.warning("reaper sweep failed (%s); trying again in %.1fs", exc, self.settings.reaper_interval_s)
                except Exception:
                    log.exception("reaper sweep failed")
                await asyncio.sleep(self.settings.reaper_interval_s)
        finally:
            try:
                await self._release(keys=[REAPER_LEASE_KEY], args=[self.token])
            except (RedisError, OSError):
                pass

    async def _hold_lease(self) -> bool:
        if await self.redis.set(REAPER_LEASE_KEY, self.token, nx=True, px=self.lease_ms):
            return True
        return await self._renew(keys=[REAPER_LEASE_KEY], args=[self.token, self.lease_ms]) == 1

    async def sweep(self) -> dict[str, int]:
        """Hand back every orphaned job, publish whatever waits in the republish outbox and, every
        `redelivery_s`, any message lost with a worker (a job queued `worker_ttl_s` ago and absent
        from the broker)."""
        outcomes: dict[str, int] = {}
        if not await self._redis_restarted_recently():
            for job, reason in await self.orphans():
                outcome = await self.attempts.hand_back(
                    job["id"], int(job["attempt"]), job["worker"], reason, self.settings.max_attempts
                )
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                if outcome != "moved":
                    log.warning("job %s attempt %s: %s → %s", job["id"], job["attempt"], reason, outcome)
                if outcome in ("failed", "cancelled"):  # the job ends here, not on a worker
                    await report_from_store(self.attempts.store, job["id"], self.settings.model, job, outcome)
        outcomes["published"] = await republish_handed_back(self.attempts, self.publisher)
        if time.monotonic() >= self._next_lost_check:
            self._next_lost_check = time.monotonic() + self.settings.redelivery_s
            outcomes["lost_republished"] = await republish_lost(
                self.attempts, self.publisher, time.time() - self.settings.worker_ttl_s
            )
        return outcomes

    async def orphans(self) -> list[tuple[dict, str]]:
        """Running jobs whose worker is gone or no longer holds them, with the reason for each."""
        jobs = await self.attempts.running()
        workers = sorted({job["worker"] for job in jobs})
        beats = dict(zip(workers, await self.redis.mget([worker_key(w) for w in workers]))) if workers else {}
        found = []
        for job in jobs:
            beat = beats.get(job["worker"])
            if beat is None:
                found.append(
                    (job, f"worker {job['worker'] or '?'} stopped (no heartbeat for {self.settings.worker_ttl_s:g}s)")
                )
                continue
            beat = json.loads(beat)
            if job["id"] not in beat["jobs"] and beat["at"] > float(job["started_at"] or 0):
                found.append((job, f"worker {job['worker']} no longer runs it"))
        return found

    async def _redis_restarted_recently(self) -> bool:
        """After a Redis restart, heartbeat keys that expired while it was down need one beat to come
        back; until then a live worker would look dead."""
        try:
            uptime = (await self.redis.info("server"))["uptime_in_seconds"]
        except (RedisError, KeyError):  # INFO may be renamed away on a managed Redis
            return False
        return uptime < self.settings.worker_ttl_s + self.settings.worker_heartbeat_s
