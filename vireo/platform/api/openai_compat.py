"""OpenAI-compatible endpoints: each request becomes a job (openai_requests.py translates), answered
from the job's result or streamed from its events as OpenAI chunks (openai_stream.py)."""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import anyio
from fastapi import APIRouter, HTTPException, Request, status
from sse_starlette.sse import EventSourceResponse

from vireo.platform import fleet
from vireo.platform.api.deps import JobsDep, PrincipalDep, SettingsDep, StoreDep, TenantDep
from vireo.platform.api.error_docs import error_responses, streamed
from vireo.platform.api.errors import STORE_DOWN
from vireo.platform.api.openai_embeddings import EMBEDDING_DIMENSIONS, EMBEDDING_MODEL
from vireo.platform.api.openai_fields import refuse_unsupported
from vireo.platform.api.openai_requests import (
    ChatCompletionRequest,
    CompletionRequest,
    SampledRequest,
    chat_job,
    chat_reply,
    completion_job,
    completion_reply,
    requested_model,
    usage,
)
from vireo.platform.api.openai_stream import RESTART_DIVERGED, Chunks, CompletionChunks, RestartDiverged
from vireo.platform.jobs import JobService
from vireo.platform.keys import Principal
from vireo.platform.served_model import served_models
from vireo.platform.settings import Settings
from vireo.platform.store import JobStore

router = APIRouter(prefix="/v1", tags=["openai"])

STREAMED = streamed(
    "The completion; with `stream: true`, OpenAI chunks as server-sent events, then [DONE].", json_events=False
)


async def _follow(request: Request, store: JobStore, job_id: str, watch_disconnect: bool = False):
    """Yield (kind, data) from the job's events until it ends.

    With `watch_disconnect`, reads wait at most 1 s and a client that went away raises ClientGone
    (a streamed response learns it from sse-starlette instead).
    """

    async def client_still_there() -> None:
        if await request.is_disconnected():
            raise ClientGone

    events = store.follow_events(
        job_id,
        block_ms=1000 if watch_disconnect else 5000,
        between_reads=client_still_there if watch_disconnect else None,
    )
    async for _event_id, kind, data in events:
        yield kind, data


class ClientGone(Exception):
    """The HTTP client went away before its completion was ready."""


async def _cancel_quietly(jobs: JobService, job_id: str) -> None:
    """Cancel the job of a client that left, even from inside a cancelled task."""
    with anyio.CancelScope(shield=True):
        await jobs.cancel(job_id)


async def _final(request: Request, jobs: JobService, job_id: str) -> tuple[dict, dict]:
    """The finished job's result and its record; cancels the job if the client disconnects."""
    try:
        async for _kind, _data in _follow(request, jobs.store, job_id, watch_disconnect=True):
            pass
    except ClientGone:
        await _cancel_quietly(jobs, job_id)
        raise HTTPException(499, "client closed the request; its generation was cancelled")
    record = await jobs.store.get(job_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"job {job_id} expired before its reply was read")
    if record["status"] != "succeeded":
        code = status.HTTP_400_BAD_REQUEST if record["status"] == "failed" else 499
        raise HTTPException(code, record.get("error") or f"generation {record['status']}")
    return json.loads(record["result"]), record


def _stream(request: Request, jobs: JobService, job_id: str, chunks: Chunks) -> EventSourceResponse:
    async def events():
        ended = False
        try:
            async for kind, data in _follow(request, jobs.store, job_id):
                try:
                    payloads = chunks.on_event(kind, data)
                except RestartDiverged:
                    # the restarted attempt diverged: cut the reply and stop the job nobody will read
                    yield json.dumps({"error": {"message": RESTART_DIVERGED, "type": "server_error", "code": 503}})
                    await _cancel_quietly(jobs, job_id)
                    break
                for payload in payloads:
                    yield json.dumps(payload)
            else:
                if chunks.include_usage:
                    yield json.dumps(chunks.usage_chunk(usage(await jobs.store.get(job_id) or {})))
            ended = True
            yield "[DONE]"
        finally:  # sse-starlette cancels this generator when the client disconnects
            if not ended:
                await _cancel_quietly(jobs, job_id)

    return EventSourceResponse(events(), ping=15)


@router.get("/models")
async def list_models(settings: SettingsDep, store: StoreDep, _tenant: TenantDep) -> dict:
    """The served models (VIREO_MODELS), the default first, each with the workers that serve it now and
    the jobs waiting for one; a model a live worker serves that is not configured here is listed too.
    Last, the embedding model of `POST /v1/embeddings`. `capabilities` says which endpoints take each."""
    try:
        workers: list[fleet.LiveWorker] | None = await fleet.live_workers(store.redis)
    except STORE_DOWN:  # the models are still these; who serves them is unknown until Redis is back
        workers = None
    listed = [
        (served.name, served.configured, settings.queue_for(served.configured)) for served in served_models(settings)
    ]
    known = {(queue, configured) for _, configured, queue in listed}
    if workers is None:
        return {
            "object": "list",
            "data": [
                *(
                    _model_entry(name, known=True) | {"status": "unknown (Redis is unreachable)"}
                    for name, _, _ in listed
                ),
                _embedding_entry(),
            ],
        }
    listed += sorted({(w.model, w.model, w.queue) for w in workers if (w.queue, w.model) not in known})
    data = []
    for name, configured, queue in listed:
        serving = [w for w in workers if (w.queue, w.model) == (queue, configured)]
        data.append(
            _model_entry(name, known=(queue, configured) in known)
            | {
                "workers": len(serving),
                "capacity": sum(w.capacity for w in serving),
                "backends": sorted({w.backend for w in serving if w.backend}),
                "devices": sorted({w.device for w in serving if w.device}),
                "queued": await fleet.broker_backlog(store.redis, queue),
                "status": "serving" if serving else "waiting for a worker",
            }
        )
    return {"object": "list", "data": [*data, _embedding_entry()]}


def _model_entry(name: str, known: bool) -> dict:
    return {
        "id": name,
        "object": "model",
        "created": 0,
        "owned_by": "vireo",
        "configured": known,
        "capabilities": ["chat.completions", "completions"],
    }


def _embedding_entry() -> dict:
    """The embedding model: it embeds (no chat or completions), in the API process itself (no workers)."""
    return {
        "id": EMBEDDING_MODEL,
        "object": "model",
        "created": 0,
        "owned_by": "vireo",
        "configured": True,
        "capabilities": ["embeddings"],
        "dimensions": EMBEDDING_DIMENSIONS,
        "status": "serving",
    }


@router.post("/chat/completions", responses=error_responses(400, 404, openai=True) | STREAMED)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, principal: PrincipalDep, jobs: JobsDep, settings: SettingsDep
):
    return await _answer(request, jobs, principal, settings, body, chat_job, Chunks, chat_reply, "chatcmpl")


@router.post("/completions", responses=error_responses(400, 404, openai=True) | STREAMED)
async def completions(
    body: CompletionRequest, request: Request, principal: PrincipalDep, jobs: JobsDep, settings: SettingsDep
):
    return await _answer(
        request, jobs, principal, settings, body, completion_job, CompletionChunks, completion_reply, "cmpl"
    )


async def _answer(
    request: Request,
    jobs: JobService,
    principal: Principal,
    settings: Settings,
    body: SampledRequest,
    job_of: Callable[[Any], tuple[str, dict]],
    chunks: type[Chunks],
    reply: Callable[..., dict],
    id_prefix: str,
):
    """Submit the request's job; stream its events as chunks, or wait and answer with the whole reply."""
    served = requested_model(settings, body.model)
    refuse_unsupported(body)
    job_id = await jobs.submit(principal, *job_of(body), {"priority": -1}, model=served.configured)
    model = served.name
    created, include_usage = int(time.time()), body.stream_options is not None and body.stream_options.include_usage
    if body.stream:
        return _stream(request, jobs, job_id, chunks(f"{id_prefix}-{job_id}", created, model, include_usage))
    result, record = await _final(request, jobs, job_id)
    return reply(job_id, created, model, result, record)
