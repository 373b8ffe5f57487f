"""Health, the app catalogue, engine statistics and Prometheus metrics."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from vireo.apps.registry import load_apps
from vireo.platform.api.auth import current_tenant, require_admin
from vireo.platform.api.error_docs import RETRY_AFTER
from vireo.platform.api.errors import RETRY_AFTER_S, STORE_DOWN, unreachable_message
from vireo.platform.metrics import refresh_engine_gauges

router = APIRouter(tags=["system"])


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    detail: str | None = None


@router.get("/healthz", response_model=Health, response_model_exclude_none=True, responses={
    503: {"model": Health, "description": "Degraded: Redis is unreachable.", "headers": RETRY_AFTER}})
async def healthz(request: Request):
    try:
        await request.app.state.store.redis.ping()
    except STORE_DOWN as exc:
        return JSONResponse(Health(status="degraded", detail=unreachable_message(exc)).model_dump(),
                            status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})
    return Health(status="ok")


@router.get("/v1/apps")
async def list_apps(_tenant: str = Depends(current_tenant)) -> dict:
    return {"apps": [app.describe() for app in load_apps().values()]}


@router.get("/v1/engine/stats")
async def engine_stats(request: Request, _tenant: str = Depends(current_tenant)) -> dict:
    stats = await request.app.state.store.engine_stats()
    return stats or {"status": "no worker has reported yet"}


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request, _admin=Depends(require_admin)) -> Response:
    """Prometheus metrics for the operator (admin keys only): counts over every tenant."""
    refresh_engine_gauges(await request.app.state.store.engine_stats())
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
