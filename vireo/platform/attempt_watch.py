"""One watcher for every running job of a worker process: is each attempt still to go on?

A running job must stop when its user cancels it or when it is handed to a newer attempt (the reaper
saw this worker as dead, or a drain handed it back). The worker learns both by polling the job records;
this polls every watched attempt in one round trip per period (`VIREO_CANCEL_POLL_S`) rather than one
per job, so 64 streaming jobs cost the worker's event loop, which shares the interpreter with the
engine's step thread, one Redis call a period instead of 64.
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from vireo.platform.attempts import Attempts

log = logging.getLogger(__name__)
Attempt = tuple[str, int]  # (job id, attempt)


class AttemptWatch:
    """`watch(attempt)` gives a future that resolves to 'cancel' or 'superseded' when that happens."""

    def __init__(self, attempts: Attempts, poll_s: float):
        self.attempts = attempts
        self.poll_s = poll_s
        self._watched: dict[Attempt, asyncio.Future[str]] = {}
        self._task: asyncio.Task | None = None

    def watch(self, job: Attempt) -> asyncio.Future[str]:
        change = self._watched.get(job)
        if change is None:
            change = self._watched[job] = asyncio.get_running_loop().create_future()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._poll())
        return change

    def forget(self, job: Attempt) -> None:
        self._watched.pop(job, None)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _poll(self) -> None:
        while self._watched:
            jobs = list(self._watched)
            try:
                states = await self.attempts.states(jobs)
            except RedisError:  # Redis away for a moment: keep generating; the fenced writes stay safe
                states = ["running"] * len(jobs)
            for job, state in zip(jobs, states):
                change = self._watched.get(job)
                if state != "running" and change is not None:
                    del self._watched[job]
                    if not change.done():
                        change.set_result(state)
            await asyncio.sleep(self.poll_s)
