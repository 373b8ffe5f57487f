"""Health and readiness, the app catalogue, engine statistics and Prometheus metrics."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel

from vireo.apps.registry import load_apps
from vireo.platform import fleet, job_metrics
from vireo.platform.api.auth import metrics_reader
from vireo.platform.api.deps import SettingsDep, StoreDep, TenantDep
from vireo.platform.api.error_docs import RETRY_AFTER, error_responses
from vireo.platform.api.errors import RETRY_AFTER_S, STORE_DOWN, unreachable_message
from vireo.platform.metrics import Snapshot, refresh_engine_gauges

router = APIRouter(tags=["system"])


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    detail: str | None = None


@router.get(
    "/healthz",
    response_model=Health,
    response_model_exclude_none=True,
    responses={503: {"model": Health, "description": "Degraded: Redis is unreachable.", "headers": RETRY_AFTER}},
)
async def healthz(store: StoreDep):
    try:
        await store.redis.ping()
    except STORE_DOWN as exc:
        return JSONResponse(
            Health(status="degraded", detail=unreachable_message(exc)).model_dump(),
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    return Health(status="ok")


class Readiness(BaseModel):
    status: Literal["ready", "not ready", "degraded"]
    workers: int = 0  # live workers on this API's queue serving its model
    detail: str | None = None


@router.get(
    "/readyz",
    response_model=Readiness,
    response_model_exclude_none=True,
    responses={
        503: {
            "model": Readiness,
            "description": "Not ready: no live worker serves this API's model on its queue, or Redis is unreachable.",
            "headers": RETRY_AFTER,
        }
    },
)
async def readyz(store: StoreDep, settings: SettingsDep):
    """Ready when Redis answers and a live worker (a current heartbeat) serves this API's model on its
    queue: submitted jobs will run. `/healthz` only says that the API process and Redis answer."""
    try:
        workers = await fleet.live_workers(store.redis)
    except STORE_DOWN as exc:
        return _not_ready(Readiness(status="degraded", detail=unreachable_message(exc)))
    serving = [w for w in workers if w.queue == settings.queue and w.model == settings.model]
    if serving:
        return Readiness(status="ready", workers=len(serving))
    others = sorted({f"{w.model} on queue {w.queue}" for w in workers})
    return _not_ready(
        Readiness(
            status="not ready",
            detail=(
                f"no live worker serves model {settings.model} on queue {settings.queue}"
                + (f" (live workers serve {', '.join(others)})" if others else "")
                + "; start one with `vireo serve worker` and the same VIREO_MODEL and VIREO_QUEUE"
            ),
        )
    )


def _not_ready(reply: Readiness) -> JSONResponse:
    return JSONResponse(
        reply.model_dump(exclude_none=True), status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)}
    )


@router.get("/v1/apps")
async def list_apps(_tenant: TenantDep) -> dict:
    return {"apps": [app.describe() for app in load_apps().values()]}


@router.get("/v1/engine/stats")
async def engine_stats(store: StoreDep, _tenant: TenantDep) -> dict:
    stats = await store.engine_stats()
    return stats or {"status": "no worker has reported yet"}


@router.get("/metrics", response_class=PlainTextResponse, responses=error_responses(401, 403, 503))
async def metrics(store: StoreDep, settings: SettingsDep, _reader: None = Depends(metrics_reader)) -> Response:
    """Prometheus metrics for the operator (an admin key or VIREO_METRICS_TOKEN): this API process's own
    counters, then what every worker recorded in Redis (job_metrics.py) and the fleet's gauges."""
    redis = store.redis
    refresh_engine_gauges(await store.engine_stats())
    shared = CollectorRegistry(auto_describe=False)
    shared.register(
        Snapshot(
            await job_metrics.read_families(redis) + await fleet.read_families(redis, settings.queue, settings.model)
        )
    )
    return Response(generate_latest() + generate_latest(shared), media_type=CONTENT_TYPE_LATEST)
