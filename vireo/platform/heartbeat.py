"""A worker's heartbeat: `vireo:worker:<id>`, refreshed every few seconds, expiring soon after the last beat.

The value names the jobs the worker holds (`{"jobs": {job_id: attempt}, "at": ...}`), so the reaper
can tell a dead worker (the key expired) from a live one that lost a job (an error after its claim).
Each beat also adds the worker's id to `vireo:workers`, so readiness and `/metrics` find live workers
(fleet.py) without scanning the keyspace; ids whose key has expired are pruned by the reader.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable

import redis

from vireo.platform.redis_keys import WORKERS_KEY, worker_key

log = logging.getLogger(__name__)


class Heartbeat:
    """Beats from a thread of its own: a long synchronous step on the engine's event loop must not make
    a live worker look dead (its jobs would be re-run elsewhere)."""

    def __init__(
        self,
        redis_url: str,
        worker_id: str,
        every_s: float,
        ttl_s: float,
        held_jobs: Callable[[], dict[str, int]],
        queue: str,
        alive: Callable[[], bool] = lambda: True,
        model: str = "",
        about: dict | None = None,
    ):
        self.worker_id = worker_id
        self.every_s = every_s
        self.ttl_ms = int(ttl_s * 1000)
        self.held_jobs = held_jobs
        self.alive = alive  # False while the worker is hung: then it does not beat, and its key expires
        # what the worker announces: where it runs, its queue and model, and `about` (backend, device, capacity)
        self.info = {"host": socket.gethostname(), "pid": os.getpid(), "queue": queue, "model": model, **(about or {})}
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vireo-heartbeat", daemon=True)
        self._failing = False

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def beat(self) -> None:
        if not self.alive():
            if not self._failing:
                log.error(
                    "worker %s is hung (its engine loop stopped turning); it stops announcing itself so "
                    "its jobs are re-run elsewhere",
                    self.worker_id,
                )
            self._failing = True
            return
        at = time.time()  # read before the jobs: a job claimed before `at` is in the list (the reaper relies on it)
        value = json.dumps({**self.info, "at": at, "jobs": self.held_jobs()})
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(worker_key(self.worker_id), value, px=self.ttl_ms)
                pipe.sadd(WORKERS_KEY, self.worker_id)
                pipe.execute()
        except redis.RedisError as exc:
            if not self._failing:
                log.warning(
                    "heartbeat of worker %s failed (%s); retrying every %.1fs", self.worker_id, exc, self.every_s
                )
            self._failing = True
            return
        if self._failing:
            log.info("heartbeat of worker %s is back", self.worker_id)
        self._failing = False

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.beat()

    def stop(self) -> None:
        """Stop beating and remove the key, so the reaper need not wait for it to expire."""
        self._stop.set()
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.delete(worker_key(self.worker_id))
                pipe.srem(WORKERS_KEY, self.worker_id)
                pipe.execute()
        except redis.RedisError:
            pass
