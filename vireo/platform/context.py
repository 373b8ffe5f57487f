"""The app context inside a worker: progress and tokens go to the job's Redis stream, in order."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from vireo.apps.base import AppContext, AppInputError, FinishedJob, TechniquePreferences
from vireo.inference.api import Engine, RequestTimes
from vireo.platform.attempts import Attempts
from vireo.platform.event_writer import EventWriter
from vireo.platform.store import JobStore, engine_time_fields


@dataclass
class JobContext(AppContext):
    """Hands its events, in order, to the worker's one `EventWriter`, which writes every job's together.

    Events are written fenced by the job's attempt: once the job is handed to a newer attempt, this
    one's late tokens are dropped rather than mixed into the new attempt's stream."""

    engine: Engine
    store: JobStore
    attempts: Attempts
    writer: EventWriter
    job_id: str
    app_name: str
    attempt: int = 1
    tenant: str = "default"
    options: dict = field(default_factory=dict)
    preferences: TechniquePreferences | None = None
    cancel_flag: bool = False
    _first_token_seen: bool = False
    _engine_times_seen: bool = False

    async def close(self) -> None:
        """Return once every event this job queued is in Redis."""
        await self.writer.flush((self.job_id, self.attempt))

    def _put(self, kind: str, payload: object) -> None:
        self.writer.put((self.job_id, self.attempt), kind, payload)

    def progress(self, fraction: float, message: str = "") -> None:
        fraction = max(0.0, min(1.0, float(fraction)))
        self._put("fields", {"progress_fraction": fraction, "progress_message": message})
        self._put("event", ("progress", {"fraction": fraction, "message": message}))

    def emit(self, text: str, index: int = 0) -> None:
        self._put("event", ("token", {"text": text} | ({"index": index} if index else {})))

    def emit_tool_call(
        self, index: int, call: int, *, id: str | None = None, name: str | None = None, arguments: str = ""
    ) -> None:
        piece = {"id": id, "name": name} if name is not None else {"arguments": arguments}
        self._put("event", ("tool_call", {"index": index, "call": call} | piece))

    def first_token(self) -> None:
        if not self._first_token_seen:
            self._first_token_seen = True
            self._put("fields", {"first_token_at": time.time()})

    def engine_times(self, times: RequestTimes) -> None:
        """The first generation's engine times (ENGINE_TIMES), beside the job's own timings."""
        if not self._engine_times_seen:
            self._engine_times_seen = True
            self._put(
                "fields", {field: value for field, value in engine_time_fields(times).items() if value is not None}
            )

    def record_usage(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> None:
        self._put("usage", (prompt_tokens, completion_tokens, cached_tokens))

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
