"""OpenAI's Files and Batch API: `/v1/files` (JSONL uploads) and `/v1/batches` (each line a job).

The routes are thin: `vireo/platform/files.py` stores files, `vireo/platform/batches.py` keeps batches
and `vireo/platform/batch_runner.py` runs them from this router's lifespan task. `OpenAILines` is the
one place a batch line meets the OpenAI layer: it is validated, translated and submitted exactly as
a single `/v1/chat/completions` or `/v1/completions` request would be (openai_compat.py).
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile, status
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from vireo.platform.api import openai_compat
from vireo.platform.api.auth import current_tenant, rate_limited
from vireo.platform.api.error_docs import error_responses
from vireo.platform.api.errors import openai_error_body, status_of
from vireo.platform.api.openai_fields import refuse_unsupported
from vireo.platform.api.openai_tools import chat_choice, choices_of, completion_choice
from vireo.platform.batch_runner import MAX_INFLIGHT_PER_BATCH, BatchRunner
from vireo.platform.batches import BatchRequestError, BatchService, InputFileNotFound, LineError
from vireo.platform.errors import ServiceError
from vireo.platform.files import FileStore
from vireo.platform.keys import Principal
from vireo.platform.served_model import served_model

CHAT, COMPLETIONS = "/v1/chat/completions", "/v1/completions"


@dataclass
class _AppRequest:
    """The part of a FastAPI Request that openai_compat's translation reads (`request.app`)."""

    app: FastAPI


class OpenAILines:
    """Batch lines as OpenAI requests: refused, submitted and answered as the single-request routes do."""

    def __init__(self, app: FastAPI):
        self.request = _AppRequest(app)
        self.settings = app.state.settings

    def refusal(self, endpoint: str, body: dict) -> tuple[str, str, str] | None:
        model = body.get("model")
        if not isinstance(model, str):
            return "missing_required_parameter", "body.model must name the model", "body.model"
        served = served_model(self.settings)
        if not served.answers_to(model):
            return "model_not_found", f"model {model!r} is not served here; this server serves {served.name!r}", \
                "body.model"
        return None

    async def submit(self, principal: Principal, endpoint: str, body: dict) -> str:
        try:
            if endpoint == CHAT:
                chat = openai_compat.ChatCompletionRequest.model_validate(body)
                self._check(chat)
                return await openai_compat._submit_chat(self.request, principal, chat)
            completion = openai_compat.CompletionRequest.model_validate(body)
            self._check(completion)
            job_input = {"prompt": completion.prompt, "n": completion.n, **openai_compat._sampling(completion, 16)}
            return await self.request.app.state.jobs.submit(principal, "chat", job_input, {"priority": -1})
        except ValidationError as exc:
            errors = [{"loc": ["body", *e["loc"]], "msg": e["msg"]} for e in exc.errors(include_url=False)]
            raise LineError(400, openai_error_body(endpoint, 400, errors)) from exc
        except StarletteHTTPException as exc:
            raise LineError(exc.status_code, openai_error_body(endpoint, exc.status_code, exc.detail)) from exc
        except ServiceError as exc:
            raise LineError(status_of(exc), openai_error_body(endpoint, status_of(exc), exc.detail)) from exc

    def _check(self, body) -> None:
        openai_compat._served_model(self.request, body.model)
        refuse_unsupported(body)
        if body.stream:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "stream is not supported in a batch")

    def reply(self, endpoint: str, job_id: str, record: dict) -> dict:
        result, created = json.loads(record["result"]), int(float(record["queued_at"]))
        model, usage = served_model(self.settings).name, openai_compat._usage(record)
        if endpoint == CHAT:
            return {"id": f"chatcmpl-{job_id}", "object": "chat.completion", "created": created, "model": model,
                    "choices": [chat_choice(c) for c in choices_of(result)], "usage": usage}
        return {"id": f"cmpl-{job_id}", "object": "text_completion", "created": created, "model": model,
                "choices": [completion_choice(c) for c in choices_of(result)], "usage": usage}


@asynccontextmanager
async def run_batches(app: FastAPI):
    """Merged into the app's lifespan by `include_router`: runs after the app's own has set up the store."""
    app.state.files = FileStore(app.state.store.redis, app.state.settings.home)
    app.state.batches = BatchService(app.state.store.redis, app.state.files)
    runner = BatchRunner(app.state.batches, app.state.files, app.state.jobs, OpenAILines(app),
                         MAX_INFLIGHT_PER_BATCH)
    task = asyncio.create_task(runner.run())
    yield
    runner.stop()  # the sweep ends after its current line; cancelled only if Redis hangs it
    try:
        await asyncio.wait_for(task, timeout=10)
    except (TimeoutError, asyncio.CancelledError):
        pass


router = APIRouter(prefix="/v1", tags=["openai"], lifespan=run_batches)
Tenant = Annotated[str, Depends(current_tenant)]
Creator = Annotated[Principal, Depends(rate_limited)]
ERRORS = error_responses(400, 404, openai=True)


def _files(request: Request) -> FileStore:
    return request.app.state.files


def _batches(request: Request) -> BatchService:
    return request.app.state.batches


def _page(items: list[dict], has_more: bool) -> dict:
    return {"object": "list", "data": items, "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None, "has_more": has_more}


def _not_found(what: str, item_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no {what} {item_id!r}")


@router.post("/files", responses=ERRORS)
async def upload_file(request: Request, principal: Creator, file: Annotated[UploadFile, File()],
                      purpose: Annotated[str, Form()]) -> dict:
    """Upload a JSONL file of batch requests (purpose `batch`); its size counts against VIREO_MAX_BODY_BYTES."""
    if purpose != "batch":
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            f"purpose {purpose!r} is not supported here; upload batch requests with purpose 'batch'")
    content = await file.read()
    return await _files(request).create(principal.tenant, purpose, file.filename or "upload.jsonl", content)


@router.get("/files")
async def list_files(request: Request, tenant: Tenant, purpose: str | None = None,
                     limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000, after: str | None = None) -> dict:
    files = await _files(request).list(tenant, purpose, limit + 1, after)
    return _page(files[:limit], len(files) > limit)


@router.get("/files/{file_id}", responses=ERRORS)
async def get_file(request: Request, tenant: Tenant, file_id: str) -> dict:
    if (found := await _files(request).get(tenant, file_id)) is None:
        raise _not_found("file", file_id)
    return found


@router.get("/files/{file_id}/content", responses=ERRORS, response_class=Response)
async def file_content(request: Request, tenant: Tenant, file_id: str) -> Response:
    if (content := await _files(request).content(tenant, file_id)) is None:
        raise _not_found("file", file_id)
    return Response(content, media_type="application/octet-stream")


@router.delete("/files/{file_id}", responses=ERRORS)
async def delete_file(request: Request, tenant: Tenant, file_id: str) -> dict:
    if not await _files(request).delete(tenant, file_id):
        raise _not_found("file", file_id)
    return {"id": file_id, "object": "file", "deleted": True}


class CreateBatch(BaseModel):
    input_file_id: str
    endpoint: str = Field(..., description=f"{CHAT} or {COMPLETIONS}")
    completion_window: Literal["24h"] = "24h"
    metadata: dict[str, str] | None = Field(None, max_length=16)


@router.post("/batches", responses=ERRORS)
async def create_batch(body: CreateBatch, request: Request, principal: Creator) -> dict:
    """Run every line of a `batch` file as a job; poll the batch for progress, then read its output file."""
    try:
        return await _batches(request).create(principal, body.input_file_id, body.endpoint,
                                              body.completion_window, body.metadata)
    except InputFileNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except BatchRequestError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"{exc.param}: {exc}") from exc


@router.get("/batches")
async def list_batches(request: Request, tenant: Tenant, after: str | None = None,
                       limit: Annotated[int, Query(ge=1, le=100)] = 20) -> dict:
    batches, has_more = await _batches(request).list(tenant, limit, after)
    return _page(batches, has_more)


@router.get("/batches/{batch_id}", responses=ERRORS)
async def get_batch(request: Request, tenant: Tenant, batch_id: str) -> dict[str, Any]:
    if (found := await _batches(request).get(tenant, batch_id)) is None:
        raise _not_found("batch", batch_id)
    return found


@router.post("/batches/{batch_id}/cancel", responses=ERRORS)
async def cancel_batch(request: Request, tenant: Tenant, batch_id: str) -> dict[str, Any]:
    if (found := await _batches(request).cancel(tenant, batch_id)) is None:
        raise _not_found("batch", batch_id)
    return found

