"""Health, the app catalogue, engine statistics and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vireo.apps.registry import load_apps
from vireo.platform.api.auth import current_tenant
from vireo.platform.metrics import refresh_engine_gauges

router = APIRouter(tags=["system"])


@router.get("/healthz")
async def healthz(request: Request) -> dict:
    await request.app.state.store.redis.ping()
    return {"status": "ok"}


@router.get("/v1/apps")
async def list_apps(_tenant: str = Depends(current_tenant)) -> dict:
    return {"apps": [app.describe() for app in load_apps().values()]}


@router.get("/v1/engine/stats")
async def engine_stats(request: Request, _tenant: str = Depends(current_tenant)) -> dict:
    stats = await request.app.state.store.engine_stats()
    return stats or {"status": "no worker has reported yet"}


@router.get("/metrics")
async def metrics(request: Request, _tenant: str = Depends(current_tenant)) -> Response:
    refresh_engine_gauges(await request.app.state.store.engine_stats())
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
