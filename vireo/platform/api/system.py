"""Health and readiness, the app catalogue, engine statistics and Prometheus metrics."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Response, status
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
from vireo.platform.served_model import find_served, served_model, served_models

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
            "description": "Not ready: a served model has no live worker on its queue, or Redis is unreachable.",
            "headers": RETRY_AFTER,
        }
    },
)
async def readyz(store: StoreDep, settings: SettingsDep):
    """Ready when Redis answers and every served model has a live worker (a current heartbeat) on its
    queue: submitted jobs will run. `/healthz` only says that the API process and Redis answer."""
    try:
        workers = await fleet.live_workers(store.redis)
    except STORE_DOWN as exc:
        return _not_ready(Readiness(status="degraded", detail=unreachable_message(exc)))
    serving = {
        model: [w for w in workers if (w.queue, w.model) == (settings.queue_for(model), model)]
        for model in settings.served_models
    }
    missing = [model for model, found in serving.items() if not found]
    if not missing:
        return Readiness(status="ready", workers=sum(len(found) for found in serving.values()))
    others = sorted({f"{w.model} on queue {w.queue}" for w in workers})
    return _not_ready(
        Readiness(
            status="not ready",
            workers=sum(len(found) for found in serving.values()),
            detail=(
                "no live worker serves "
                + ", ".join(f"model {model} on queue {settings.queue_for(model)}" for model in missing)
                + (f" (live workers serve {', '.join(others)})" if others else "")
                + "; start one with `vireo serve worker --model NAME` and the same VIREO_MODELS and VIREO_QUEUE"
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


@router.get("/v1/engine/stats", responses=error_responses(404))
async def engine_stats(store: StoreDep, settings: SettingsDep, _tenant: TenantDep, model: str | None = None) -> dict:
    """The engine numbers of a served model's workers (default: the default model's)."""
    served = settings.default_model if model is None else _served_or_404(settings, model)
    stats = await store.engine_stats(served)
    return stats or {"status": f"no worker of {served_model(settings, served).name} has reported yet"}


def _served_or_404(settings, requested: str) -> str:
    found = find_served(settings, requested)
    if found is None:
        names = ", ".join(s.name for s in served_models(settings))
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"model {requested!r} is not served here; served: {names}")
    return found.configured


@router.get("/metrics", response_class=PlainTextResponse, responses=error_responses(401, 403, 503))
async def metrics(store: StoreDep, settings: SettingsDep, _reader: None = Depends(metrics_reader)) -> Response:
    """Prometheus metrics for the operator (an admin key or VIREO_METRICS_TOKEN): this API process's own
    counters, then what every worker recorded in Redis (job_metrics.py) and the fleet's gauges."""
    redis = store.redis
    for model in settings.served_models:
        refresh_engine_gauges(model, await store.engine_stats(model))
    shared = CollectorRegistry(auto_describe=False)
    shared.register(
        Snapshot(
            await job_metrics.read_families(redis)
            + await fleet.read_families(redis, {(settings.queue_for(m), m) for m in settings.served_models})
        )
    )
    return Response(generate_latest() + generate_latest(shared), media_type=CONTENT_TYPE_LATEST)
