"""The FastAPI application: job API, OpenAI-compatible face, collections, health and metrics."""

from __future__ import annotations

import asyncio
import importlib
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from vireo.platform.api import jobs, openai_compat, system
from vireo.platform.jobs import JobService
from vireo.platform.services import configure_app_services
from vireo.platform.settings import Settings, get_settings
from vireo.platform.store import JobStore

OPTIONAL_ROUTERS = ("vireo.platform.api.collections",)  # present once their apps are installed


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        configure_app_services(settings)
        app.state.store = JobStore(settings.redis_url, settings.job_ttl_s, settings.events_maxlen)
        app.state.jobs = JobService(app.state.store, settings)
        await asyncio.to_thread(app.state.jobs.warm_up)  # heavy imports before the first request
        yield
        await app.state.store.close()

    app = FastAPI(title="Vireo", version="0.1.0", lifespan=lifespan,
                  description="LLM task apps on a fast inference layer. Authenticate with "
                              "`Authorization: Bearer <key>`.")
    app.state.settings = settings
    app.state.tenants_by_key = settings.tenants_by_key()
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for router in (system.router, jobs.router, openai_compat.router):
        app.include_router(router)
    for module_name in OPTIONAL_ROUTERS:
        try:
            app.include_router(importlib.import_module(module_name).router)
        except ModuleNotFoundError:
            pass
    return app


async def _http_error(request: Request, exc: HTTPException):
    body = openai_compat.openai_error_body(request.url.path, exc.status_code, exc.detail)
    if body is None:
        return await http_exception_handler(request, exc)
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _validation_error(request: Request, exc: RequestValidationError):
    body = openai_compat.openai_error_body(request.url.path, 422, exc.errors())
    if body is None:
        return await request_validation_exception_handler(request, exc)
    return JSONResponse(body, status_code=422)


class BodyLimit:
    """Refuse oversized requests with 413 before reading them.

    A plain ASGI middleware: Starlette's `@app.middleware("http")` wraps every request in extra
    tasks and streams, which cost more than the whole job submission.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length", b"")
            if length.isdigit() and int(length) > self.max_bytes:
                response = JSONResponse(
                    {"detail": f"request body is {int(length)} bytes; the limit is {self.max_bytes} "
                               "bytes (VIREO_MAX_BODY_BYTES)"},
                    status_code=status.HTTP_413_CONTENT_TOO_LARGE)
                return await response(scope, receive, send)
        await self.app(scope, receive, send)
