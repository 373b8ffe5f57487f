"""The app context inside a worker: progress and tokens go to the job's Redis stream, in order."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from vireo.apps.base import AppContext, AppInputError, FinishedJob, TechniquePreferences
from vireo.inference.api import Engine
from vireo.platform.attempts import Attempts
from vireo.platform.store import JobStore


@dataclass
class JobContext(AppContext):
    """Buffers events in a queue drained by one writer task, so their order is kept.

    Events are written fenced by the job's attempt: once the job is handed to a newer attempt, this
    one's late tokens are dropped rather than mixed into the new attempt's stream."""

    engine: Engine
    store: JobStore
    attempts: Attempts
    job_id: str
    app_name: str
    attempt: int = 1
    tenant: str = "default"
    options: dict = field(default_factory=dict)
    preferences: TechniquePreferences | None = None
    cancel_flag: bool = False
    _queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    _writer: asyncio.Task | None = None
    _first_token_seen: bool = False

    def start(self) -> None:
        self._writer = asyncio.create_task(self._drain())

    async def close(self) -> None:
        """Flush every queued event to Redis."""
        await self._queue.put(None)
        if self._writer is not None:
            await self._writer

    async def _drain(self) -> None:
        while True:
            item = await self._queue.get()
            batch = [item]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            done = any(i is None for i in batch)
            await self._write([i for i in batch if i is not None])
            if done:
                return

    async def _write(self, items: list[tuple]) -> None:
        """Write what queued up since the last write, in order; a run of events goes in one round trip
        (at many tokens a second the writer falls behind a little and its batches grow)."""
        events: list[tuple[str, dict]] = []
        for kind, payload in items:
            if kind == "event":
                events.append(payload)
                continue
            if events:
                await self.attempts.emit_many(self.job_id, self.attempt, events)
                events = []
            if kind == "fields":
                await self.store.update(self.job_id, **payload)
            elif kind == "usage":
                await self.store.add_usage(self.job_id, *payload)
        if events:
            await self.attempts.emit_many(self.job_id, self.attempt, events)

    def progress(self, fraction: float, message: str = "") -> None:
        fraction = max(0.0, min(1.0, float(fraction)))
        self._queue.put_nowait(("fields", {"progress_fraction": fraction, "progress_message": message}))
        self._queue.put_nowait(("event", ("progress", {"fraction": fraction, "message": message})))

    def emit(self, text: str, index: int = 0) -> None:
        self._queue.put_nowait(("event", ("token", {"text": text} | ({"index": index} if index else {}))))

    def emit_tool_call(
        self, index: int, call: int, *, id: str | None = None, name: str | None = None, arguments: str = ""
    ) -> None:
        piece = {"id": id, "name": name} if name is not None else {"arguments": arguments}
        self._queue.put_nowait(("event", ("tool_call", {"index": index, "call": call} | piece)))

    def first_token(self) -> None:
        if not self._first_token_seen:
            self._first_token_seen = True
            self._queue.put_nowait(("fields", {"first_token_at": time.time()}))

    def record_usage(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> None:
        self._queue.put_nowait(("usage", (prompt_tokens, completion_tokens, cached_tokens)))

    def cancelled(self) -> bool:
        return self.cancel_flag

    async def finished_job(self, job_id: str) -> FinishedJob:
        """Another tenant's job reads as unknown, as it does through the API (no existence leak)."""
        record = await self.store.get(job_id)
        if record is None or record.get("tenant") != self.tenant:
            raise AppInputError(f"job {job_id} not found for this tenant")
        if record["status"] != "succeeded":
            raise AppInputError(f"job {job_id} is {record['status']}; only succeeded jobs can be read")
        return FinishedJob(
            id=job_id, app=record["app"], input=json.loads(record["input"]), result=json.loads(record["result"])
        )
