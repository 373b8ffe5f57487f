"""A job's end, reported once: one log line (`vireo.jobs`) and its metrics (job_metrics.py).

Most jobs end on a worker (runtime.py); the rest where they end: cancelled while queued (the API),
failed after too many attempts or cancelled on a dead worker (the reaper).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

from redis.exceptions import RedisError

from vireo.platform.job_metrics import add_observations

log = logging.getLogger("vireo.jobs")


@dataclass(frozen=True)
class JobOutcome:
    job_id: str
    app: str
    tenant: str
    model: str
    status: str
    attempt: int
    queue_wait_s: float | None  # submit → start of the attempt that ended the job
    duration_s: float | None  # start of that attempt → end
    ttft_s: float | None  # start of that attempt → first token
    time_per_output_token_s: float | None
    prompt_tokens: int
    completion_tokens: int
    error: str | None = None
    worker: str | None = None

    @classmethod
    def from_record(
        cls, record: dict, model: str, status: str | None = None, error: str | None = None, now: float | None = None
    ) -> JobOutcome:
        """From a job hash (as `store.get` returns it) that has ended, or is ending now as `status`."""

        def at(name: str) -> float | None:
            return float(record[name]) if record.get(name) not in (None, "") else None

        queued, started, first, finished = at("queued_at"), at("started_at"), at("first_token_at"), at("finished_at")
        finished = finished or now or time.time()
        completion = int(record.get("completion_tokens") or 0)
        return cls(
            job_id=record["id"],
            app=record.get("app", ""),
            tenant=record.get("tenant", ""),
            model=model,
            status=status or record["status"],
            attempt=int(record.get("attempt") or 1),
            queue_wait_s=_span(queued, started),
            duration_s=_span(started, finished),
            ttft_s=_span(started, first),
            time_per_output_token_s=(_span(first, finished) or 0) / (completion - 1)
            if first and completion > 1
            else None,
            prompt_tokens=int(record.get("prompt_tokens") or 0),
            completion_tokens=completion,
            error=error if error is not None else (record.get("error") or None),
            worker=record.get("worker") or None,
        )

    def observations(self) -> dict[str, float | None]:
        """Histogram values: queue wait for every job that started; the rest for succeeded jobs."""
        done = self.status == "succeeded"
        return {
            "vireo_job_queue_wait_seconds": self.queue_wait_s,
            "vireo_job_ttft_seconds": self.ttft_s if done else None,
            "vireo_job_time_per_output_token_seconds": self.time_per_output_token_s if done else None,
            "vireo_job_duration_seconds": self.duration_s if done else None,
        }


def _span(start: float | None, end: float | None) -> float | None:
    return round(max(0.0, end - start), 6) if start is not None and end is not None else None


async def report_job_end(redis, outcome: JobOutcome) -> None:
    """Log the job's end (failures at warning, with their error) and record its metrics; never raises:
    a job that ended stays ended if Redis refuses its metrics."""
    level = logging.INFO if outcome.status != "failed" else logging.WARNING
    log.log(level, "job %s %s", outcome.job_id, outcome.status, extra=asdict(outcome))
    try:
        async with redis.pipeline(transaction=False) as pipe:
            add_observations(pipe, outcome.model, outcome.app, outcome.status, outcome.observations())
            await pipe.execute()
    except (RedisError, OSError) as exc:
        log.warning("job %s: its metrics were not recorded (%s)", outcome.job_id, exc)


async def report_from_store(store, job_id: str, model: str, record: dict, status: str) -> None:
    """Report a job that just ended, from its final record (first token time and usage reach the record
    through the job's context); `record` stands in when Redis does not answer. Counted under the job's
    own model (its record's), else `model`."""
    try:
        final = await store.get(job_id) or record
    except (RedisError, OSError):
        final = record
    await report_job_end(store.redis, JobOutcome.from_record(final, final.get("model") or model, status))
