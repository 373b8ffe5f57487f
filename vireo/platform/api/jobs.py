"""Job routes: submit, inspect, stream events (SSE, resumable), cancel, list."""

from __future__ import annotations

import json
import logging
import re

from fastapi import APIRouter, Depends, Header, HTTPException, Query, status
from sse_starlette.sse import EventSourceResponse

from vireo.platform.api.deps import JobsDep, PrincipalDep, StoreDep, TenantDep
from vireo.platform.api.error_docs import error_responses, streamed
from vireo.platform.api.errors import STORE_DOWN
from vireo.platform.api.schemas import CancelReply, JobAccepted, JobCreate, JobDetail, JobList, JobView

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
STREAM_ID = r"^[0-9]{1,19}(-[0-9]{1,19})?$"  # a Redis stream id, as the `id:` of an event
CURSOR = r"^([0-9]{1,12}(\.[0-9]{1,12})?)?$"  # a submit time, checked in list_jobs


async def owned_job(job_id: str, store: StoreDep, tenant: TenantDep) -> dict:
    """The job record if it belongs to the caller's tenant; 404 otherwise (no existence leak)."""
    record = await store.get(job_id)
    if record is None or record.get("tenant") != tenant:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"job {job_id} not found")
    return record


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted, responses=error_responses(404))
async def submit_job(body: JobCreate, principal: PrincipalDep, jobs: JobsDep) -> JobAccepted:
    job_id = await jobs.submit(
        principal, body.app, body.input, body.options.model_dump(exclude_none=True), model=body.model
    )
    return JobAccepted(id=job_id, status="queued")


@router.get("", response_model=JobList, responses=error_responses(400))
async def list_jobs(
    store: StoreDep,
    tenant: TenantDep,
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = Query(
        None, description="next_cursor of the previous page", json_schema_extra={"pattern": CURSOR}
    ),
) -> JobList:
    if not re.fullmatch(CURSOR, cursor or ""):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "cursor must be the next_cursor of a previous page")
    before = float(cursor) if cursor else None
    records = await store.list_jobs(tenant, limit, before)
    next_cursor = records[-1]["queued_at"] if len(records) == limit else None
    return JobList(jobs=[JobView.from_record(r) for r in records], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobDetail, responses=error_responses(404))
async def get_job(record: dict = Depends(owned_job)) -> JobDetail:
    return JobDetail.from_record(record)


@router.delete("/{job_id}", response_model=CancelReply, responses=error_responses(404))
async def cancel_job(jobs: JobsDep, record: dict = Depends(owned_job)) -> CancelReply:
    return CancelReply(id=record["id"], status=await jobs.cancel(record["id"]))


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses=error_responses(404) | streamed("The job's events: status, progress, token, result, end."),
)
async def job_events(
    store: StoreDep,
    record: dict = Depends(owned_job),
    last_event_id: str = Header(
        "0-0", alias="Last-Event-ID", pattern=STREAM_ID, description="replay the events after this one"
    ),
) -> EventSourceResponse:
    """Replay the job's events after `Last-Event-ID` (or from the start), then follow live ones."""

    async def events():  # sse-starlette cancels this generator when the client goes away
        try:
            async for event_id, kind, data in store.follow_events(record["id"], last_event_id):
                yield {"id": event_id, "event": kind, "data": json.dumps(data)}
        except STORE_DOWN:  # the stream ends; the client reconnects with Last-Event-ID
            log.warning("job %s: Redis went away mid-stream; the event stream ends here", record["id"])

    return EventSourceResponse(events(), ping=15)
