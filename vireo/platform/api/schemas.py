"""Request and response models of the job API."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
# seeds are below it: every engine takes them (torch.Generator.manual_seed up to 2**64), and every JSON
# reader keeps them exact (JavaScript numbers and JSON Schema tools hold integers as doubles)
SEED_LIMIT = 2**53


class JobOptions(BaseModel):
    """Generation overrides applied on top of the app's defaults."""

    model_config = {"extra": "forbid", "allow_inf_nan": False, "strict": True}  # no `false` for a number
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0, le=2**31 - 1, description="0 = off")
    max_tokens: int | None = Field(None, ge=1, le=8192)
    seed: int | None = Field(None, ge=0, lt=SEED_LIMIT)
    ignore_eos: bool | None = Field(
        None, description="Generate max_tokens even past the end-of-sequence token (benchmarks, load tests)."
    )
    priority: int = Field(0, ge=-10, le=10, description="lower runs first")


class JobCreate(BaseModel):
    app: str = Field(..., min_length=1, examples=["summarize"])
    input: dict[str, Any]
    options: JobOptions = Field(default_factory=JobOptions)
    model: str | None = Field(
        None,
        max_length=500,
        description="A served model (GET /v1/models); default: the app's (VIREO_APP_MODELS), else the first served. "
        "A model no worker serves right now keeps the job queued until one does.",
    )


class JobAccepted(BaseModel):
    id: str
    status: JobStatus


class Progress(BaseModel):
    fraction: float = 0.0
    message: str = ""


class Timings(BaseModel):
    queued_at: float | None = None
    started_at: float | None = None
    first_token_at: float | None = None
    finished_at: float | None = None
    # the engine's share of the time to first token (engines that keep them: the native one)
    engine_received_at: float | None = None
    engine_scheduled_at: float | None = None
    engine_first_token_at: float | None = None


class TokenUsage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


class JobView(BaseModel):
    id: str
    app: str
    model: str | None = Field(None, description="the served model that runs (or ran) the job")
    status: JobStatus
    progress: Progress
    result: dict[str, Any] | None = None
    error: str | None = None
    timings: Timings
    usage: TokenUsage
    attempts: int = Field(
        1,
        description="runs of this job so far: more than 1 when a worker stopped "
        "mid-job and the job started over (timings and usage are the last run's)",
    )

    @classmethod
    def from_record(cls, r: dict[str, str]) -> "JobView":
        def num(name: str) -> float | None:
            return float(r[name]) if r.get(name) not in (None, "") else None

        return cls(
            id=r["id"],
            app=r["app"],
            model=r.get("model") or None,
            status=r["status"],
            progress=Progress(fraction=float(r.get("progress_fraction") or 0), message=r.get("progress_message", "")),
            result=json.loads(r["result"]) if r.get("result") else None,
            error=r.get("error") or None,
            timings=Timings(
                queued_at=num("queued_at"),
                started_at=num("started_at"),
                first_token_at=num("first_token_at"),
                finished_at=num("finished_at"),
                engine_received_at=num("engine_received_at"),
                engine_scheduled_at=num("engine_scheduled_at"),
                engine_first_token_at=num("engine_first_token_at"),
            ),
            usage=TokenUsage(
                prompt_tokens=int(r.get("prompt_tokens") or 0),
                completion_tokens=int(r.get("completion_tokens") or 0),
                cached_tokens=int(r.get("cached_tokens") or 0),
            ),
            attempts=int(r.get("attempt") or 1),
        )


class JobDetail(JobView):
    """One job as `GET /v1/jobs/{id}` shows it: its view and what was submitted (lists leave these out)."""

    input: dict[str, Any] | None = Field(None, description="the job's input as submitted")
    options: dict[str, Any] | None = Field(None, description="the job's generation options as submitted")

    @classmethod
    def from_record(cls, r: dict[str, str]) -> "JobDetail":
        submitted = {name: json.loads(r[name]) if r.get(name) else None for name in ("input", "options")}
        return cls(**JobView.from_record(r).model_dump(), **submitted)


class JobList(BaseModel):
    jobs: list[JobView]
    next_cursor: str | None = None


class CancelReply(BaseModel):
    id: str
    status: str
