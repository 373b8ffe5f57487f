"""What the OpenAPI schema says about errors and streams, so clients (and schemathesis) know every answer.

Errors that come from a route's dependencies are added to the schema by looking at the dependencies
themselves, so a new route is documented as soon as it authenticates or is rate limited:
an API key lookup → 401 and 503 (keys live in Redis); an admin route → 403; a rate-limited route
→ 429; a body → 400 (not JSON text), 413 and 422. Errors a route raises itself (404, 409, 400)
it declares with `responses=error_responses(...)`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel

from vireo.platform.api.auth import current_principal, rate_limited, require_admin
from vireo.platform.api.errors import OPENAI_PATHS


class FieldError(BaseModel):
    type: str
    loc: list[str | int]
    msg: str
    ctx: dict[str, Any] | None = None


class ErrorReply(BaseModel):
    """An error on the job, collection and system routes: a message, or (422) the fields at fault."""

    detail: str | list[FieldError]


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    code: int | None = None


class OpenAIErrorReply(BaseModel):
    """An error on the OpenAI-compatible routes, in OpenAI's shape."""

    error: OpenAIErrorBody


WHY = {
    400: "A malformed request: a body that is not JSON text, a bad cursor or option, a failed generation.",
    401: "Missing or invalid API key.",
    403: "This endpoint needs an admin key.",
    404: "Not found (other tenants' jobs and collections are not shown to exist).",
    409: "Already exists.",
    413: "The request body is larger than VIREO_MAX_BODY_BYTES.",
    422: "The input failed validation; the answer names the field and the rule.",
    429: "Over a limit of this key or tenant; retry after Retry-After seconds.",
    503: "The job store or queue (Redis) is unreachable; retry after Retry-After seconds.",
}
RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "required": True, "schema": {"type": "integer"}}
}


def _sse(data: dict) -> dict:
    """A server-sent event stream, described one event at a time."""
    return {
        "text/event-stream": {
            "schema": {
                "type": "object",
                "properties": {
                    "event": {"type": "string"},
                    "id": {"type": "string"},
                    "retry": {"type": "integer"},
                    "data": data,
                },
            }
        }
    }


def error_responses(*codes: int, openai: bool = False) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each error status it answers itself, with its body model."""
    model = OpenAIErrorReply if openai else ErrorReply
    return {code: {"model": model, "description": WHY[code], **_headers(code)} for code in codes}


def streamed(description: str, json_events: bool = True) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a 200 that is (or may be) a server-sent event stream; each event's data is JSON,
    or (json_events False) JSON or a plain marker such as OpenAI's [DONE]."""
    data = {"type": "string", **({"contentMediaType": "application/json"} if json_events else {})}
    return {200: {"description": description, "content": _sse(data)}}


def document_errors(app: FastAPI) -> None:
    """Make `app.openapi()` list, on every operation, the errors its dependencies can answer."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = app.openapi_schema
        if schema is None:
            schema = generate()  # FastAPI keeps it as app.openapi_schema; completed here once
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (ErrorReply, OpenAIErrorReply):
                model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(model_schema.pop("$defs", {}))
                components[model.__name__] = model_schema
            for route in app.routes:
                if isinstance(route, APIRoute):
                    for method in route.methods:
                        operation = schema["paths"][route.path_format][method.lower()]
                        _add_errors(operation["responses"], route)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend its schema


def _add_errors(responses: dict, route: APIRoute) -> None:
    model = "OpenAIErrorReply" if route.path.startswith(OPENAI_PATHS) else "ErrorReply"
    calls = _dependency_calls(route.dependant)
    codes = set()
    if current_principal in calls:
        codes |= {401, 503}
    if require_admin in calls:
        codes.add(403)
    if rate_limited in calls:
        codes.add(429)
    if route.body_field is not None:
        codes |= {400, 413, 422}
    if "422" in responses:  # FastAPI's own 422 model has no room for our one-message answers
        codes.add(422)
        responses.pop("422")
    for code in sorted(codes):
        responses.setdefault(
            str(code),
            {
                "description": WHY[code],
                **_headers(code),
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}},
            },
        )


def _dependency_calls(dependant) -> set:
    calls, stack = set(), list(dependant.dependencies)
    while stack:
        sub = stack.pop()
        calls.add(sub.call)
        stack.extend(sub.dependencies)
    return calls


def _headers(code: int) -> dict:
    return {"headers": RETRY_AFTER} if code in (429, 503) else {}
