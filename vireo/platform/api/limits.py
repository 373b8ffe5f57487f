"""`GET /v1/limits`: the caller's limits and what is left of them; 429 replies for requests over one."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from vireo.platform.api.deps import AuthenticatedDep, LimiterDep, SettingsDep
from vireo.platform.api.errors import openai_error_body
from vireo.platform.limits import WINDOW_MS, LimitExceeded
from vireo.platform.metrics import REQUESTS_LIMITED

router = APIRouter(prefix="/v1", tags=["limits"])


class Allowance(BaseModel):
    limit: int = Field(..., description="0 = unlimited")
    used: int
    remaining: int | None = Field(..., description="null when unlimited")
    reset_s: int | None = Field(None, description="seconds until the window or the day starts over")


class LimitsView(BaseModel):
    tenant: str
    key_id: str
    role: str
    requests_per_minute: Allowance = Field(..., description="this key's requests that create work")
    concurrent_jobs: Allowance = Field(..., description="the tenant's queued + running jobs")
    tokens_per_day: Allowance = Field(..., description="the tenant's prompt + completion tokens, UTC day")
    request_body_bytes: int = Field(
        ..., description="the largest request body the API takes (VIREO_MAX_BODY_BYTES; larger is refused with 413)"
    )


def _allowance(limit: int, used: int, reset_s: int | None = None) -> Allowance:
    return Allowance(limit=limit, used=used, remaining=max(0, limit - used) if limit else None, reset_s=reset_s)


@router.get("/limits", response_model=LimitsView)
async def my_limits(principal: AuthenticatedDep, limiter: LimiterDep, settings: SettingsDep) -> LimitsView:
    usage = await limiter.usage(principal, time.time())
    limits = usage["limits"]
    return LimitsView(
        tenant=principal.tenant,
        key_id=principal.key_id,
        role=principal.role,
        requests_per_minute=_allowance(limits.rpm, usage["requests_last_minute"], WINDOW_MS // 1000),
        concurrent_jobs=_allowance(limits.concurrent, usage["active_jobs"]),
        tokens_per_day=_allowance(limits.tokens_per_day, usage["tokens_today"], usage["tokens_reset_s"]),
        request_body_bytes=settings.max_body_bytes,
    )


async def too_many_requests(request: Request, exc: Exception) -> JSONResponse:
    """The app's handler for a request over a limit: 429 with Retry-After, counted in /metrics."""
    assert isinstance(exc, LimitExceeded)  # registered for LimitExceeded only (app.py)
    REQUESTS_LIMITED.labels(limit=exc.limit, tenant=exc.tenant).inc()
    body = openai_error_body(request.url.path, 429, exc.message) or {"detail": exc.message}
    return JSONResponse(body, status_code=429, headers={"Retry-After": str(exc.retry_after_s)})
