"""The FastAPI application: job API, OpenAI-compatible face, collections, health and metrics."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, status
from fastapi.responses import JSONResponse

from vireo.apps.registry import load_apps
from vireo.platform.api import admin, jobs, limits, openai_batches, openai_compat, openai_embeddings, system
from vireo.platform.api.deps import APP_ROUTE_DEPS
from vireo.platform.api.error_docs import document_errors
from vireo.platform.api.errors import install_error_handlers, openai_error_body
from vireo.platform.api.request_log import RequestLog
from vireo.platform.api.state import ApiState
from vireo.platform.limits import LimitExceeded
from vireo.platform.logs import configure_logging
from vireo.platform.reaper import Reaper
from vireo.platform.services import configure_app_services
from vireo.platform.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        configure_logging(settings.log_level, settings.log_format)  # each API process's own (api_workers > 1)
        configure_app_services(settings)
        state = app.state.vireo = ApiState.open(settings)  # what the routes' dependencies hand out (deps.py)
        await asyncio.to_thread(state.jobs.warm_up)  # heavy imports before the first request
        reaper = asyncio.create_task(Reaper(state.store, state.jobs.publisher, settings).run())
        yield
        reaper.cancel()
        await asyncio.gather(reaper, return_exceptions=True)
        await state.close()

    app = FastAPI(
        title="Vireo",
        version="0.1.0",
        lifespan=lifespan,
        description="LLM task apps on a fast inference layer. Authenticate with `Authorization: Bearer <key>`.",
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestLog)  # added last: outermost, so it logs BodyLimit's 413s too
    install_error_handlers(app)
    app.add_exception_handler(LimitExceeded, limits.too_many_requests)
    for router in (
        system.router,
        jobs.router,
        openai_compat.router,
        openai_batches.router,
        openai_embeddings.router,
        limits.router,
        admin.router,
    ):
        app.include_router(router)
    for plugin in load_apps().values():  # apps' own routes (the RAG app's collections)
        if (app_router := plugin.router(APP_ROUTE_DEPS)) is not None:
            app.include_router(app_router)
    document_errors(app)
    return app


class BodyTooLarge(HTTPException):
    def __init__(self, size: str, max_bytes: int):  # closing the connection is what stops the upload
        super().__init__(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"request body is {size} bytes; the limit is {max_bytes} bytes (VIREO_MAX_BODY_BYTES)",
            headers={"Connection": "close"},
        )


class BodyLimit:
    """Refuse oversized requests with 413: at once from `Content-Length`, or, for a chunked body
    that declares none, as soon as the bytes read so far pass the limit (the rest is never read).

    A plain ASGI middleware: Starlette's `@app.middleware("http")` wraps every request in extra
    tasks and streams, which cost more than the whole job submission.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            exc = BodyTooLarge(length.decode(), self.max_bytes)
            body = openai_error_body(scope["path"], exc.status_code, exc.detail) or {"detail": exc.detail}
            response = JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
            return await response(scope, receive, send)
        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:  # raised inside the route: its handler answers 413
                    raise BodyTooLarge(f"more than {self.max_bytes}", self.max_bytes)
            return message

        await self.app(scope, counted_receive, send)
