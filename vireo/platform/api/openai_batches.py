"""OpenAI's Files and Batch API: `/v1/files` (JSONL uploads) and `/v1/batches` (each line a job).

The routes are thin: `vireo/platform/files.py` stores files, `vireo/platform/batches.py` keeps batches
and `vireo/platform/batch_runner.py` runs them from this router's lifespan task. `OpenAILines` is the
one place a batch line meets the OpenAI layer: it is validated, translated and submitted exactly as
a single `/v1/chat/completions` or `/v1/completions` request would be (openai_requests.py).
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, File, Form, HTTPException, Query, UploadFile, status
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from vireo.platform.api.deps import BatchesDep, FilesDep, PrincipalDep, TenantDep
from vireo.platform.api.error_docs import error_responses
from vireo.platform.api.errors import openai_error_body, status_of
from vireo.platform.api.openai_fields import refuse_unsupported
from vireo.platform.api.openai_requests import (
    ChatCompletionRequest,
    CompletionRequest,
    chat_job,
    chat_reply,
    completion_job,
    completion_reply,
    requested_model,
)
from vireo.platform.api.state import ApiState
from vireo.platform.batch_runner import MAX_INFLIGHT_PER_BATCH, BatchRunner
from vireo.platform.batches import BatchRequestError, InputFileNotFound, LineError
from vireo.platform.errors import ServiceError
from vireo.platform.jobs import JobService
from vireo.platform.keys import Principal
from vireo.platform.served_model import served_model
from vireo.platform.settings import Settings

CHAT, COMPLETIONS = "/v1/chat/completions", "/v1/completions"


class OpenAILines:
    """Batch lines as OpenAI requests: refused, submitted and answered as the single-request routes do
    (both translate through openai_requests.py)."""

    def __init__(self, settings: Settings, jobs: JobService):
        self.settings, self.jobs = settings, jobs

    def refusal(self, endpoint: str, body: dict) -> tuple[str, str, str] | None:
        model = body.get("model")
        if not isinstance(model, str):
            return "missing_required_parameter", "body.model must name the model", "body.model"
        try:
            requested_model(self.settings, model)
        except HTTPException as exc:
            return "model_not_found", str(exc.detail), "body.model"
        return None

    async def submit(self, principal: Principal, endpoint: str, body: dict) -> str:
        try:
            request: ChatCompletionRequest | CompletionRequest
            if endpoint == CHAT:
                request = ChatCompletionRequest.model_validate(body)
                model = self._check(request)
                return await self.jobs.submit(principal, *chat_job(request), {"priority": -1}, model=model)
            request = CompletionRequest.model_validate(body)
            model = self._check(request)
            return await self.jobs.submit(principal, *completion_job(request), {"priority": -1}, model=model)
        except ValidationError as exc:
            errors = [{"loc": ["body", *e["loc"]], "msg": e["msg"]} for e in exc.errors(include_url=False)]
            raise LineError(400, _error_body(endpoint, 400, errors)) from exc
        except StarletteHTTPException as exc:
            raise LineError(exc.status_code, _error_body(endpoint, exc.status_code, exc.detail)) from exc
        except ServiceError as exc:
            raise LineError(status_of(exc), _error_body(endpoint, status_of(exc), exc.detail)) from exc

    def _check(self, body: ChatCompletionRequest | CompletionRequest) -> str:
        """The configured name of the line's model, once the line is one a single request could be."""
        served = requested_model(self.settings, body.model)
        refuse_unsupported(body)
        if body.stream:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "stream is not supported in a batch")
        return served.configured

    def reply(self, endpoint: str, job_id: str, record: dict) -> dict:
        result, created = json.loads(record["result"]), int(float(record["queued_at"]))
        model = record.get("model") or served_model(self.settings).name
        if endpoint == CHAT:
            return chat_reply(job_id, created, model, result, record)
        return completion_reply(job_id, created, model, result, record)


def _error_body(endpoint: str, status_code: int, detail: Any) -> dict:
    body = openai_error_body(endpoint, status_code, detail)
    assert body is not None  # both batch endpoints are OpenAI paths, which always get OpenAI's error shape
    return body


@asynccontextmanager
async def run_batches(app: FastAPI):
    """Merged into the app's lifespan by `include_router`: runs after the app's own has set up the store."""
    state: ApiState = app.state.vireo
    runner = BatchRunner(
        state.batches, state.files, state.jobs, OpenAILines(state.settings, state.jobs), MAX_INFLIGHT_PER_BATCH
    )
    task = asyncio.create_task(runner.run())
    yield
    runner.stop()  # the sweep ends after its current line; cancelled only if Redis hangs it
    try:
        await asyncio.wait_for(task, timeout=10)
    except (TimeoutError, asyncio.CancelledError):
        pass


router = APIRouter(prefix="/v1", tags=["openai"], lifespan=run_batches)
ERRORS = error_responses(400, 404, openai=True)


def _page(items: list[dict], has_more: bool) -> dict:
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }


def _not_found(what: str, item_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no {what} {item_id!r}")


@router.post("/files", responses=ERRORS)
async def upload_file(
    principal: PrincipalDep, files: FilesDep, file: Annotated[UploadFile, File()], purpose: Annotated[str, Form()]
) -> dict:
    """Upload a JSONL file of batch requests (purpose `batch`); its size counts against VIREO_MAX_BODY_BYTES."""
    if purpose != "batch":
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"purpose {purpose!r} is not supported here; upload batch requests with purpose 'batch'",
        )
    content = await file.read()
    return await files.create(principal.tenant, purpose, file.filename or "upload.jsonl", content)


@router.get("/files")
async def list_files(
    tenant: TenantDep,
    files: FilesDep,
    purpose: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    after: str | None = None,
) -> dict:
    found = await files.list(tenant, purpose, limit + 1, after)
    return _page(found[:limit], len(found) > limit)


@router.get("/files/{file_id}", responses=ERRORS)
async def get_file(tenant: TenantDep, files: FilesDep, file_id: str) -> dict:
    if (found := await files.get(tenant, file_id)) is None:
        raise _not_found("file", file_id)
    return found


@router.get("/files/{file_id}/content", responses=ERRORS, response_class=Response)
async def file_content(tenant: TenantDep, files: FilesDep, file_id: str) -> Response:
    if (content := await files.content(tenant, file_id)) is None:
        raise _not_found("file", file_id)
    return Response(content, media_type="application/octet-stream")


@router.delete("/files/{file_id}", responses=ERRORS)
async def delete_file(tenant: TenantDep, files: FilesDep, file_id: str) -> dict:
    if not await files.delete(tenant, file_id):
        raise _not_found("file", file_id)
    return {"id": file_id, "object": "file", "deleted": True}


class CreateBatch(BaseModel):
    input_file_id: str
    endpoint: str = Field(..., description=f"{CHAT} or {COMPLETIONS}")
    completion_window: Literal["24h"] = "24h"
    metadata: dict[str, str] | None = Field(None, max_length=16)


@router.post("/batches", responses=ERRORS)
async def create_batch(body: CreateBatch, principal: PrincipalDep, batches: BatchesDep) -> dict:
    """Run every line of a `batch` file as a job; poll the batch for progress, then read its output file."""
    try:
        return await batches.create(principal, body.input_file_id, body.endpoint, body.completion_window, body.metadata)
    except InputFileNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except BatchRequestError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"{exc.param}: {exc}") from exc


@router.get("/batches")
async def list_batches(
    tenant: TenantDep, batches: BatchesDep, after: str | None = None, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> dict:
    page, has_more = await batches.list(tenant, limit, after)
    return _page(page, has_more)


@router.get("/batches/{batch_id}", responses=ERRORS)
async def get_batch(tenant: TenantDep, batches: BatchesDep, batch_id: str) -> dict[str, Any]:
    if (found := await batches.get(tenant, batch_id)) is None:
        raise _not_found("batch", batch_id)
    return found


@router.post("/batches/{batch_id}/cancel", responses=ERRORS)
async def cancel_batch(tenant: TenantDep, batches: BatchesDep, batch_id: str) -> dict[str, Any]:
    if (found := await batches.cancel(tenant, batch_id)) is None:
        raise _not_found("batch", batch_id)
    return found
