"""One writer for every running job of a worker process: their events go to Redis together.

Each job's `JobContext` queues its events here instead of writing them itself. One task drains the
queue: what every job queued since the last write goes to Redis in one round trip (one Lua call that
appends each job's events to its own stream, fenced by the job's attempt), so a worker streaming 64
jobs costs Redis one call per engine step rather than 64, and its event loop one await instead of 64
(which matters on a GPU, where the loop shares the interpreter with the engine's step thread).

A job's events keep their order: a job's other writes (progress fields, usage) wait for its earlier
events. Adjacent token events of one choice that queued up together are joined into one event (the
same text in fewer pieces), so a writer that falls behind catches up instead of falling further behind.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from vireo.platform.attempts import Attempts

Attempt = tuple[str, int]  # (job id, attempt)


@dataclass
class _Pending:
    """What one write carries: each attempt's events in order, and the other writes and flushes after them."""

    events: dict[Attempt, list[tuple[str, dict]]] = field(default_factory=dict)

    def add(self, job: Attempt, event: tuple[str, dict]) -> None:
        events = self.events.setdefault(job, [])
        if events and _joinable(events[-1], event):
            kind, data = events[-1]
            events[-1] = (kind, data | {"text": data["text"] + event[1]["text"]})
        else:
            events.append(event)


def _joinable(last: tuple[str, dict], event: tuple[str, dict]) -> bool:
    return last[0] == event[0] == "token" and last[1].get("index", 0) == event[1].get("index", 0)


class EventWriter:
    """Writes the events, progress and usage of every job of one worker, in each job's order."""

    def __init__(self, attempts: Attempts):
        self.attempts = attempts
        self.store = attempts.store
        self._queue: asyncio.Queue[tuple[Attempt, str, Any]] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    def put(self, job: Attempt, kind: str, payload: Any) -> None:
        """Queue `("event", (name, data))`, `("fields", {...})` or `("usage", (prompt, completion, cached))`."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())
        self._queue.put_nowait((job, kind, payload))

    async def flush(self, job: Attempt) -> None:
        """Return once everything `job` queued so far is in Redis."""
        done = asyncio.get_running_loop().create_future()
        self.put(job, "flush", done)
        await done

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _drain(self) -> None:
        while True:
            items = [await self._queue.get()]
            while not self._queue.empty():
                items.append(self._queue.get_nowait())
            try:
                await self._write(items)
            except Exception as exc:  # Redis failed: the jobs waiting on a flush hear it, the writer goes on
                for _job, kind, payload in items:
                    if kind == "flush" and not payload.done():
                        payload.set_exception(exc)

    async def _write(self, items: list[tuple[Attempt, str, Any]]) -> None:
        pending = _Pending()
        for job, kind, payload in items:
            if kind == "event":
                pending.add(job, payload)
                continue
            if job in pending.events:  # this job's earlier events go first
                await self._emit(pending)
                pending = _Pending()
            if kind == "fields":
                await self.store.update(job[0], **payload)
            elif kind == "usage":
                await self.store.add_usage(job[0], *payload)
            elif kind == "flush" and not payload.done():
                payload.set_result(None)
        await self._emit(pending)

    async def _emit(self, pending: _Pending) -> None:
        if pending.events:
            await self.attempts.emit_batches(
                [(job_id, attempt, events) for (job_id, attempt), events in pending.events.items()]
            )
