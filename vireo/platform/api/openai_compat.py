"""OpenAI-compatible endpoints, translated onto the job path (the `chat` app) and its event stream."""

from __future__ import annotations

import json
import time
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse

from vireo.apps.chat_tools import Tool, ToolCall, ToolChoice
from vireo.platform.api.auth import current_tenant, rate_limited
from vireo.platform.api.error_docs import error_responses, streamed
from vireo.platform.api.openai_fields import refuse_unsupported
from vireo.platform.api.openai_stream import RESTART_DIVERGED, Chunks, CompletionChunks, RestartDiverged
from vireo.platform.api.openai_tools import chat_choice, chat_message, choices_of, completion_choice, tool_fields
from vireo.platform.api.schemas import SEED_LIMIT
from vireo.platform.keys import Principal
from vireo.platform.served_model import served_model

router = APIRouter(prefix="/v1", tags=["openai"])

# Fields not declared here reach `refuse_unsupported`: a 400 naming them unless ignorable (openai_fields.py).
OPEN = {"allow_inf_nan": False, "extra": "allow"}
STREAMED = streamed("The completion; with `stream: true`, OpenAI chunks as server-sent events, then [DONE].",
                    json_events=False)


class OpenAIMessage(BaseModel):
    model_config = OPEN
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = Field(None, description="Accepted and ignored.")
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class StreamOptions(BaseModel):
    model_config = OPEN
    include_usage: bool = False


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: dict[str, Any] | None = Field(None, description='{"name": ..., "schema": {...}}')


class ChatCompletionRequest(BaseModel):
    model_config = OPEN
    model: str
    messages: list[OpenAIMessage] = Field(..., min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=0, lt=SEED_LIMIT)
    stop: str | list[str] | None = None
    n: int = Field(1, ge=1, le=8)
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    structured_outputs: dict[str, Any] | None = Field(
        None, description="vLLM-style: {'choice': [...]} | {'regex': ...} | {'json': schema}")
    tools: list[Tool] | None = Field(None, max_length=128)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None


class CompletionRequest(BaseModel):
    model_config = OPEN
    model: str
    prompt: str
    stream: bool = False
    max_tokens: int | None = Field(16, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=0, lt=SEED_LIMIT)
    stop: str | list[str] | None = None
    n: int = Field(1, ge=1, le=8)
    stream_options: StreamOptions | None = None
    structured_outputs: dict[str, Any] | None = Field(
        None, description="vLLM-style: {'choice': [...]} | {'regex': ...} | {'json': schema}")


def _served_model(request: Request, name: str) -> str:
    served = served_model(request.app.state.settings)
    if not served.answers_to(name):
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"model {name!r} is not served here; this server serves {served.name!r}")
    return served.name


def _text_of(message: OpenAIMessage) -> str:
    if isinstance(message.content, list):
        return "\n".join(part["text"] for part in message.content
                         if part.get("type") == "text" and isinstance(part.get("text"), str))
    return message.content or ""


def _image_url_of(messages: list[OpenAIMessage]) -> str | None:
    """The last user image part's URL, if the conversation has one (answered by the caption app)."""
    for message in reversed(messages):
        if message.role == "user" and isinstance(message.content, list):
            for part in message.content:
                if part.get("type") == "image_url":
                    url = (part.get("image_url") or {}).get("url") if isinstance(part.get("image_url"), dict) \
                        else part.get("image_url")
                    if not isinstance(url, str) or not url.startswith("data:image/"):
                        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                                            "image_url must be a data:image/...;base64, URL; this server "
                                            "does not fetch images from the network")
                    return url
    return None


def _constraint(body) -> dict | None:
    """The chat app's `constraint` from OpenAI `response_format` or vLLM-style `structured_outputs`."""
    structured = body.structured_outputs or {}
    known = {"choice": "choices", "regex": "regex", "json": "json_schema"}
    if structured:
        unknown = set(structured) - set(known)
        if unknown or len(structured) != 1:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "structured_outputs takes exactly one of "
                                "'choice', 'regex' or 'json'")
        (key, value), = structured.items()
        return {known[key]: value}
    fmt = getattr(body, "response_format", None)
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"json_schema": {"type": "object"}}
    schema = (fmt.json_schema or {}).get("schema")
    if not isinstance(schema, dict):
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            "response_format json_schema needs {'json_schema': {'name': ..., 'schema': {...}}}")
    return {"json_schema": schema}


def _sampling(body, default_max: int) -> dict:
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    fields = {"max_tokens": getattr(body, "max_completion_tokens", None) or body.max_tokens or default_max,
              "stop": stop, "seed": body.seed}
    if body.temperature is not None:
        fields["temperature"] = body.temperature
    if body.top_p is not None:
        fields["top_p"] = body.top_p
    if (constraint := _constraint(body)) is not None:
        fields["constraint"] = constraint
    return fields


async def _follow(request: Request, job_id: str, watch_disconnect: bool = False):
    """Yield (kind, data) from the job's events until it ends.

    With `watch_disconnect`, reads wait at most 1 s and a client that went away raises ClientGone
    (a streamed response learns it from sse-starlette instead).
    """
    async def client_still_there() -> None:
        if await request.is_disconnected():
            raise ClientGone

    events = request.app.state.store.follow_events(
        job_id, block_ms=1000 if watch_disconnect else 5000,
        between_reads=client_still_there if watch_disconnect else None)
    async for _event_id, kind, data in events:
        yield kind, data


class ClientGone(Exception):
    """The HTTP client went away before its completion was ready."""


async def _cancel_quietly(request: Request, job_id: str) -> None:
    """Cancel the job of a client that left, even from inside a cancelled task."""
    with anyio.CancelScope(shield=True):
        await request.app.state.jobs.cancel(job_id)


async def _final(request: Request, job_id: str) -> tuple[dict, dict]:
    """The finished job's result and its record; cancels the job if the client disconnects."""
    try:
        async for _kind, _data in _follow(request, job_id, watch_disconnect=True):
            pass
    except ClientGone:
        await _cancel_quietly(request, job_id)
        raise HTTPException(499, "client closed the request; its generation was cancelled")
    record = await request.app.state.store.get(job_id)
    if record["status"] != "succeeded":
        code = status.HTTP_400_BAD_REQUEST if record["status"] == "failed" else 499
        raise HTTPException(code, record.get("error") or f"generation {record['status']}")
    return json.loads(record["result"]), record


def _stream(request: Request, job_id: str, chunks: Chunks) -> EventSourceResponse:
    async def events():
        ended = False
        try:
            async for kind, data in _follow(request, job_id):
                try:
                    payloads = chunks.on_event(kind, data)
                except RestartDiverged:
                    # the restarted attempt diverged: cut the reply and stop the job nobody will read
                    yield json.dumps({"error": {"message": RESTART_DIVERGED, "type": "server_error", "code": 503}})
                    await _cancel_quietly(request, job_id)
                    break
                for payload in payloads:
                    yield json.dumps(payload)
            else:
                if chunks.include_usage:
                    yield json.dumps(chunks.usage_chunk(_usage(await request.app.state.store.get(job_id))))
            ended = True
            yield "[DONE]"
        finally:  # sse-starlette cancels this generator when the client disconnects
            if not ended:
                await _cancel_quietly(request, job_id)

    return EventSourceResponse(events(), ping=15)


@router.get("/models")
async def list_models(request: Request, _tenant: str = Depends(current_tenant)) -> dict:
    return {"object": "list", "data": [{"id": served_model(request.app.state.settings).name, "object": "model",
                                        "created": 0, "owned_by": "vireo"}]}


@router.post("/chat/completions", responses=error_responses(400, 404, openai=True) | STREAMED)
async def chat_completions(body: ChatCompletionRequest, request: Request,
                           principal: Principal = Depends(rate_limited)):
    model = _served_model(request, body.model)
    refuse_unsupported(body)
    job_id = await _submit_chat(request, principal, body)
    created, cid = int(time.time()), f"chatcmpl-{job_id}"
    if body.stream:
        return _stream(request, job_id, Chunks(cid, created, model, _include_usage(body)))
    result, record = await _final(request, job_id)
    return {"id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [chat_choice(c) for c in choices_of(result)], "usage": _usage(record)}


def _include_usage(body) -> bool:
    return body.stream_options is not None and body.stream_options.include_usage


async def _submit_chat(request: Request, principal: Principal, body: ChatCompletionRequest) -> str:
    """A chat job, or a caption job when the last user turn carries an image."""
    image_url = _image_url_of(body.messages)
    if image_url is not None:
        if body.n > 1 or body.tools:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "a message with an image is captioned: "
                                "n > 1 and tools are not supported with image input")
        style = _text_of(next(m for m in reversed(body.messages) if m.role == "user")).strip()
        job_input = {"image_base64": image_url, "style": style[:200] or None,
                     "max_tokens": min(300, max(8, body.max_completion_tokens or body.max_tokens or 60))}
        return await request.app.state.jobs.submit(principal, "caption", job_input, {"priority": -1})
    messages = [chat_message(m.role, _text_of(m), m.tool_calls, m.tool_call_id) for m in body.messages]
    job_input = {"messages": messages, "n": body.n, **_sampling(body, 256), **tool_fields(body)}
    return await request.app.state.jobs.submit(principal, "chat", job_input, {"priority": -1})


@router.post("/completions", responses=error_responses(400, 404, openai=True) | STREAMED)
async def completions(body: CompletionRequest, request: Request, principal: Principal = Depends(rate_limited)):
    model = _served_model(request, body.model)
    refuse_unsupported(body)
    job_input = {"prompt": body.prompt, "n": body.n, **_sampling(body, 16)}
    job_id = await request.app.state.jobs.submit(principal, "chat", job_input, {"priority": -1})
    created, cid = int(time.time()), f"cmpl-{job_id}"
    if body.stream:
        return _stream(request, job_id, CompletionChunks(cid, created, model, _include_usage(body)))
    result, record = await _final(request, job_id)
    return {"id": cid, "object": "text_completion", "created": created, "model": model,
            "choices": [completion_choice(c) for c in choices_of(result)], "usage": _usage(record)}


def _usage(record: dict) -> dict:
    """Token counts the worker recorded for the whole job (every engine call of its app)."""
    prompt, completion = int(record.get("prompt_tokens") or 0), int(record.get("completion_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

