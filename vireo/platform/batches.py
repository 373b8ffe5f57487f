"""OpenAI's Batch API: a JSONL file of requests becomes jobs, submitted a few at a time; their replies
become an output file and an error file.

State lives in Redis, so an API restart loses nothing: the batch hash (`vireo:batch:<id>`) holds the
status, the counts and `cursor` (the next line to submit); `:inflight` maps submitted lines to their
job ids; `:output` and `:errors` hold the result lines until the batch ends and they are written as
files. `BatchRunner` (a task of the API process, one replica at a time under a Redis lease, like the
reaper) moves every open batch along each `SWEEP_S`: it validates a new batch, collects lines whose
job ended, submits more while the batch has fewer than `batch_max_inflight` lines in flight and its
tenant's concurrency limit admits them, and finishes the batch when nothing is left.

How a line becomes a job (validation, the chat app's input) is the OpenAI layer's business: the
runner (vireo/platform/batch_runner.py) calls a `Lines` object (vireo/platform/api/openai_batches.py)
and knows no HTTP.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from typing import Any, Protocol

import redis.asyncio as aioredis

from vireo.platform.files import FileStore
from vireo.platform.keys import KeyLimits, Principal
from vireo.platform.redis_keys import BATCHES_OPEN_KEY, batch_key, tenant_batches_key

ENDPOINTS = ("/v1/chat/completions", "/v1/completions")
COMPLETION_WINDOW_S = {"24h": 24 * 3600}
MAX_REQUESTS = 50_000  # OpenAI's limit per batch
MAX_ERRORS = 100  # validation errors reported; the first ones are enough to fix a file
SWEEP_S = 0.5
OPEN = ("validating", "in_progress", "finalizing", "cancelling")


# KEYS[1] the batch; ARGV: from-states count, from-states..., to-state, field, value, ... → 1 if moved
_MOVE = """
local status = redis.call('HGET', KEYS[1], 'status')
for i = 1, tonumber(ARGV[1]) do
  if ARGV[1 + i] == status then
    local n = tonumber(ARGV[1]) + 2
    redis.call('HSET', KEYS[1], 'status', ARGV[n])
    for j = n + 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[j], ARGV[j + 1]) end
    return 1
  end
end
return 0
"""


class BatchRequestError(ValueError):
    """A batch that cannot be created as asked (unknown endpoint, window, file); `param` names the field."""

    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.param = param


class InputFileNotFound(BatchRequestError):
    """The input file is not one of the tenant's files."""


class LineError(Exception):
    """One request line refused before it became a job: its OpenAI status code and error body."""

    def __init__(self, status_code: int, body: dict):
        super().__init__(body)
        self.status_code, self.body = status_code, body


class Lines(Protocol):
    """Turns request lines into jobs and finished jobs into replies (the OpenAI layer implements it)."""

    def refusal(self, endpoint: str, body: dict) -> tuple[str, str, str] | None:
        """(code, message, param) when the line cannot run on this server at all (say, its model)."""

    async def submit(self, principal: Principal, endpoint: str, body: dict) -> str:
        """The job id of the line's request; LineError when it is refused, LimitExceeded when over a limit."""

    def reply(self, endpoint: str, job_id: str, record: dict) -> dict:
        """The OpenAI response body of a succeeded job."""


class BatchService:
    """Create, read, list and cancel a tenant's batches (the runner does the work)."""

    def __init__(self, redis: aioredis.Redis, files: FileStore):
        self.redis = redis
        self.files = files
        self._move = redis.register_script(_MOVE)

    async def create(
        self, principal: Principal, input_file_id: str, endpoint: str, completion_window: str, metadata: dict | None
    ) -> dict:
        if endpoint not in ENDPOINTS:
            raise BatchRequestError(
                f"endpoint {endpoint!r} is not served in batches; use one of {', '.join(ENDPOINTS)}", "endpoint"
            )
        if completion_window not in COMPLETION_WINDOW_S:
            raise BatchRequestError(f"completion_window must be '24h', not {completion_window!r}", "completion_window")
        found = await self.files.get(principal.tenant, input_file_id)
        if found is None:
            raise InputFileNotFound(f"no file {input_file_id!r}", "input_file_id")
        if found["purpose"] != "batch":
            raise BatchRequestError(
                f"file {input_file_id!r} has purpose {found['purpose']!r}; upload the requests with purpose 'batch'",
                "input_file_id",
            )
        now = int(time.time())
        batch_id = f"batch_{uuid.uuid4().hex}"
        record = {
            "id": batch_id,
            "tenant": principal.tenant,
            "principal": json.dumps(dataclasses.asdict(principal)),
            "endpoint": endpoint,
            "input_file_id": input_file_id,
            "completion_window": completion_window,
            "status": "validating",
            "created_at": now,
            "expires_at": now + COMPLETION_WINDOW_S[completion_window],
            "metadata": json.dumps(metadata) if metadata else "",
            "total": 0,
            "completed": 0,
            "failed": 0,
            "cursor": 0,
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(batch_key(batch_id), mapping=record)
            pipe.zadd(tenant_batches_key(principal.tenant), {batch_id: time.time()})
            pipe.sadd(BATCHES_OPEN_KEY, batch_id)
            await pipe.execute()
        return batch_object(record)

    async def get(self, tenant: str, batch_id: str) -> dict | None:
        raw = await self.redis.hgetall(batch_key(batch_id))
        return batch_object(raw) if raw and raw.get("tenant") == tenant else None

    async def list(self, tenant: str, limit: int, after: str | None) -> tuple[list[dict], bool]:
        """The tenant's batches newest first after the id `after`, and whether more follow."""
        ids = await self.redis.zrevrange(tenant_batches_key(tenant), 0, -1)
        if after in ids:
            ids = ids[ids.index(after) + 1 :]
        batches = [b for batch_id in ids[:limit] if (b := await self.get(tenant, batch_id)) is not None]
        return batches, len(ids) > limit

    async def cancel(self, tenant: str, batch_id: str) -> dict | None:
        """Ask the runner to stop the batch (its in-flight jobs are cancelled, finished ones kept)."""
        if await self.get(tenant, batch_id) is None:
            return None
        await self.move(batch_id, ("validating", "in_progress"), "cancelling", cancelling_at=int(time.time()))
        return await self.get(tenant, batch_id)

    async def move(self, batch_id: str, from_states: tuple[str, ...], to_state: str, **fields: Any) -> bool:
        args: list[Any] = [len(from_states), *from_states, to_state]
        for name, value in fields.items():
            args += [name, value]
        return await self._move(keys=[batch_key(batch_id)], args=args) == 1


def batch_object(raw: dict) -> dict:
    """The OpenAI batch object of a stored batch."""
    times = {
        name: int(raw[name]) if raw.get(name) else None
        for name in (
            "created_at",
            "in_progress_at",
            "expires_at",
            "finalizing_at",
            "completed_at",
            "failed_at",
            "expired_at",
            "cancelling_at",
            "cancelled_at",
        )
    }
    errors = json.loads(raw["errors"]) if raw.get("errors") else None
    return {
        "id": raw["id"],
        "object": "batch",
        "endpoint": raw["endpoint"],
        "errors": {"object": "list", "data": errors} if errors else None,
        "input_file_id": raw["input_file_id"],
        "completion_window": raw["completion_window"],
        "status": raw["status"],
        "output_file_id": raw.get("output_file_id") or None,
        "error_file_id": raw.get("error_file_id") or None,
        **times,
        "request_counts": {
            "total": int(raw.get("total") or 0),
            "completed": int(raw.get("completed") or 0),
            "failed": int(raw.get("failed") or 0),
        },
        "metadata": json.loads(raw["metadata"]) if raw.get("metadata") else None,
    }


def parse_requests(content: bytes, endpoint: str, lines: Lines) -> tuple[list[tuple[str, dict]], list[dict]]:
    """The file's requests as (custom_id, body), and OpenAI validation errors naming their line."""
    requests: list[tuple[str, dict]] = []
    errors: list[dict] = []
    seen: set[str] = set()

    def refuse(code: str, message: str, number: int, param: str | None = None) -> None:
        if len(errors) < MAX_ERRORS:
            errors.append({"code": code, "message": f"line {number}: {message}", "param": param, "line": number})

    for number, raw in enumerate(content.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError as exc:
            refuse("invalid_json_line", f"not valid JSON ({exc})", number)
            continue
        if not isinstance(item, dict):
            refuse("invalid_request", "a line must be a JSON object with custom_id, method, url, body", number)
            continue
        custom_id, body = item.get("custom_id"), item.get("body")
        if not isinstance(custom_id, str) or not custom_id:
            refuse("missing_required_parameter", "custom_id must be a non-empty string", number, "custom_id")
        elif custom_id in seen:
            refuse("duplicate_custom_id", f"custom_id {custom_id!r} is used by an earlier line", number, "custom_id")
        elif item.get("method") != "POST":
            refuse("invalid_method", f"method must be 'POST', not {item.get('method')!r}", number, "method")
        elif item.get("url") != endpoint:
            refuse("invalid_url", f"url {item.get('url')!r} is not this batch's endpoint {endpoint!r}", number, "url")
        elif not isinstance(body, dict):
            refuse("invalid_request", "body must be a JSON object (the request)", number, "body")
        elif (refusal := lines.refusal(endpoint, body)) is not None:
            refuse(refusal[0], refusal[1], number, refusal[2])
        else:
            seen.add(custom_id)
            requests.append((custom_id, body))
    if not requests and not errors:
        errors.append({"code": "empty_file", "message": "the input file has no requests", "param": None, "line": None})
    if len(requests) > MAX_REQUESTS:
        errors.append(
            {
                "code": "too_many_requests",
                "param": None,
                "line": None,
                "message": f"the file has {len(requests)} requests; a batch takes at most {MAX_REQUESTS}",
            }
        )
    return requests, errors


def principal_of(raw: dict) -> Principal:
    fields = json.loads(raw["principal"])
    return Principal(**{**fields, "limits": KeyLimits(**fields["limits"])})
