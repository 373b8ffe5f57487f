"""How the API answers errors: one set of exception handlers for every route.

- An unreachable Redis (job store or Celery broker) is a 503 with `Retry-After`, never a 500.
- A validation error is a 422 that names the field and the rule; it never echoes the value back
  (that value may be megabytes, NaN, or nested past any limit, and JSON cannot carry NaN).
- OpenAI-compatible routes answer errors in OpenAI's shape (`openai_error_body`).
- A service's domain error (`vireo.platform.errors`) answers with the status `STATUS_OF_ERROR` gives it.
`error_docs.py` shows these answers in the OpenAPI schema.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException
from starlette.routing import Match, Route

from vireo.platform.errors import InvalidInput, ServiceError, UnknownApp, UnknownModel
from vireo.platform.queue import BrokerUnavailable

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5  # Redis restarts (and replays its AOF) in a few seconds
STORE_DOWN = (RedisConnectionError, RedisTimeoutError)
QUEUE_DOWN = (BrokerUnavailable, BrokerError)
OPENAI_PATHS = ("/v1/chat/", "/v1/completions", "/v1/models", "/v1/files", "/v1/batches", "/v1/embeddings")
OPENAI_TYPES = {401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error", 503: "server_error"}
STATUS_OF_ERROR: dict[type[ServiceError], int] = {
    UnknownApp: status.HTTP_404_NOT_FOUND,
    UnknownModel: status.HTTP_404_NOT_FOUND,
    InvalidInput: status.HTTP_422_UNPROCESSABLE_CONTENT,
}


def status_of(exc: ServiceError) -> int:
    """The HTTP status a domain error answers with (the nearest mapped class it derives from)."""
    return next(code for cls, code in STATUS_OF_ERROR.items() if isinstance(exc, cls))


def openai_error_body(path: str, status_code: int, detail) -> dict | None:
    """OpenAI clients read errors as {"error": {...}}; other routes keep FastAPI's {"detail"}."""
    if not path.startswith(OPENAI_PATHS):
        return None
    message = (
        "; ".join(f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}" for e in detail)
        if isinstance(detail, list)
        else str(detail)
    )
    kind = OPENAI_TYPES.get(status_code, "invalid_request_error")
    return {"error": {"message": message, "type": kind, "code": status_code}}


def unreachable_message(exc: Exception) -> str:
    what = "job queue (Redis broker)" if isinstance(exc, QUEUE_DOWN) else "job store (Redis)"
    return f"the {what} is unreachable; retry in {RETRY_AFTER_S} s"


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 + Retry-After, in the route's error shape."""
    message = unreachable_message(exc)
    log.warning("%s %s: %s (%s: %s)", request.method, request.url.path, message, type(exc).__name__, exc)
    body = openai_error_body(request.url.path, 503, message) or {"detail": message}
    return JSONResponse(
        body, status_code=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": str(RETRY_AFTER_S)}
    )


# Starlette types a handler as taking any Exception; each one here is registered for one class and narrows to it.
async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    body = openai_error_body(request.url.path, exc.status_code, exc.detail) or {"detail": exc.detail}
    headers = exc.headers
    if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:  # Starlette names one route's methods only
        headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    code = status_of(exc)
    body = openai_error_body(request.url.path, code, exc.detail) or {"detail": exc.detail}
    return JSONResponse(body, status_code=code)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (each method is a route of its own)."""
    return sorted(
        {
            method
            for route in request.app.routes
            if isinstance(route, Route) and route.matches(request.scope)[0] != Match.NONE
            for method in route.methods or ()
        }
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_field_error(e) for e in exc.errors()]
    body = openai_error_body(request.url.path, 422, errors) or {"detail": errors}
    return JSONResponse(body, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def _field_error(error: dict) -> dict:
    """One pydantic error as JSON can carry it: type, loc, msg and plain-valued ctx; no input."""
    out: dict[str, Any] = {
        "type": str(error.get("type", "")),
        "msg": str(error.get("msg", "")),
        "loc": [part if isinstance(part, int) else str(part) for part in error.get("loc", ())],
    }
    if error.get("ctx"):
        out["ctx"] = {str(key): value if _plain(value) else str(value) for key, value in error["ctx"].items()}
    return out


def _plain(value) -> bool:
    return isinstance(value, (str, int, bool)) or (isinstance(value, float) and math.isfinite(value))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ServiceError, _service_error)
    for exc_class in (*STORE_DOWN, *QUEUE_DOWN):
        app.add_exception_handler(exc_class, _unavailable)
