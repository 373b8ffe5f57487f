"""One log line per HTTP request (`vireo.access`): request id, method, path template, status, duration,
tenant and key id, and for an error answer its message.

The request id is the client's `X-Request-ID` when it is a plain token (letters, digits, `._:-`, up to
128), else a new one; either way the response carries it back, so a client can quote it. A plain
ASGI middleware, outermost but for Starlette's error page (cheap: see BodyLimit in app.py); the
tenant and key id come from the auth dependency (`request.state.principal`).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

log = logging.getLogger("vireo.access")
REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
ERROR_BODY_BYTES = 2048  # enough of an error answer to find its message


class RequestLog:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        given = dict(scope["headers"]).get(b"x-request-id", b"")
        request_id = given.decode() if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        answer = {"status": 500}
        error_body = bytearray()

        async def logged_send(message):
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
            elif message["type"] == "http.response.body" and answer["status"] >= 400:
                error_body.extend(message.get("body", b"")[: ERROR_BODY_BYTES - len(error_body)])
            await send(message)

        try:
            await self.app(scope, receive, logged_send)
        except Exception as exc:  # Starlette's outer middleware answers 500; the line says why
            _log(scope, request_id, 500, started, f"{type(exc).__name__}: {exc}", exc_info=True)
            raise
        status = answer["status"]
        _log(scope, request_id, status, started, _error_message(bytes(error_body)) if status >= 400 else None)


def _log(scope, request_id: str, status: int, started: float, error: str | None, exc_info: bool = False) -> None:
    level = logging.ERROR if status >= 500 and exc_info else logging.WARNING if status >= 500 else logging.INFO
    if not log.isEnabledFor(level):
        return
    route = scope.get("route")
    path = getattr(route, "path", None) or scope["path"][:200]  # the template: one series per route
    principal = scope.get("state", {}).get("principal")
    log.log(
        level,
        "%s %s %d",
        scope["method"],
        path,
        status,
        exc_info=exc_info,
        extra={
            "request_id": request_id,
            "method": scope["method"],
            "path": path,
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            "tenant": getattr(principal, "tenant", None),
            "key_id": getattr(principal, "key_id", None),
            "error": error,
        },
    )


def _error_message(body: bytes) -> str | None:
    """The message of an error answer: FastAPI's `detail` (a list of field errors joined) or OpenAI's
    `error.message`; the raw start of the body when it is not JSON."""
    try:
        reply = json.loads(body)
    except ValueError:
        return body[:300].decode(errors="replace") or None
    detail = reply.get("detail") if isinstance(reply, dict) else None
    if detail is None and isinstance(reply, dict) and isinstance(reply.get("error"), dict):
        detail = reply["error"].get("message")
    if isinstance(detail, list):
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}" for e in detail if isinstance(e, dict)
        )
    return str(detail)[:300] if detail is not None else None
