"""The batch runner: moves every open batch along (validate, submit lines as slots free, collect replies,
write the output and error files). A task of the API process, one replica at a time under a Redis lease.

Each line is a job submitted through the same path as a single request (`Lines.submit`), so it
counts against its tenant's concurrent-jobs limit and token budget like any job. A batch keeps at most
`batch_max_inflight` lines queued or running, and fewer when the tenant's limit is reached: a line the
limiter refuses for concurrency waits for the next sweep. A line refused for the token budget fails
with a 429 reply. The batch's own creation is the one request counted against requests per minute.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

from redis.exceptions import RedisError

from vireo.platform.batches import (
    SWEEP_S,
    BatchService,
    LineError,
    Lines,
    batch_key,
    parse_requests,
    principal_of,
)
from vireo.platform.files import FileStore
from vireo.platform.jobs import JobService
from vireo.platform.limits import LimitExceeded
from vireo.platform.queue import BrokerUnavailable
from vireo.platform.redis_keys import BATCHES_LEASE_KEY, BATCHES_OPEN_KEY, inflight_key, results_key
from vireo.platform.store import TERMINAL

log = logging.getLogger(__name__)
# lines of one batch queued or running at once: a 10,000-line batch never floods the queue, and the
# tenant's interactive requests keep slots when its concurrency limit is higher
MAX_INFLIGHT_PER_BATCH = 8
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"


class BatchRunner:
    """Sweeps open batches every `SWEEP_S` while it holds the lease."""

    def __init__(self, batches: BatchService, files: FileStore, jobs: JobService, lines: Lines, max_inflight: int):
        self.batches, self.files, self.jobs, self.lines = batches, files, jobs, lines
        self.redis = batches.redis
        self.max_inflight = max_inflight
        self.token = uuid.uuid4().hex
        self._renew = self.redis.register_script(_RENEW)
        self._requests: dict[str, list[tuple[str, dict]]] = {}  # parsed input files, re-read after a restart
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Stop after the line being submitted is recorded (a cancel there would submit it twice)."""
        self._stopping.set()

    async def run(self) -> None:
        """Sweep until stopped; a failed sweep (Redis away) is logged and tried again."""
        while not self._stopping.is_set():
            try:
                if await self._hold_lease():
                    await self.sweep()
            except (RedisError, OSError, BrokerUnavailable) as exc:
                log.warning("batch sweep failed (%s); trying again", exc)
            except Exception:
                log.exception("batch sweep failed")
            try:
                await asyncio.wait_for(self._stopping.wait(), SWEEP_S)
            except TimeoutError:
                pass

    async def _hold_lease(self) -> bool:
        lease_ms = int(SWEEP_S * 10_000)
        if await self.redis.set(BATCHES_LEASE_KEY, self.token, nx=True, px=lease_ms):
            return True
        return await self._renew(keys=[BATCHES_LEASE_KEY], args=[self.token, lease_ms]) == 1

    async def sweep(self) -> None:
        for batch_id in sorted(await self.redis.smembers(BATCHES_OPEN_KEY)):
            if self._stopping.is_set():
                return
            raw = await self.redis.hgetall(batch_key(batch_id))
            if not raw:
                await self.redis.srem(BATCHES_OPEN_KEY, batch_id)
                continue
            await self.advance(raw)

    async def advance(self, raw: dict) -> None:
        """One step of one batch, whatever its status."""
        batch_id, status = raw["id"], raw["status"]
        if status == "validating":
            return await self._validate(raw)
        if status not in ("in_progress", "cancelling", "finalizing"):
            await self.redis.srem(BATCHES_OPEN_KEY, batch_id)
            return
        requests = await self._requests_of(raw)
        await self._collect(raw, requests)
        expired = status == "in_progress" and time.time() >= int(raw["expires_at"])
        if status == "cancelling" or expired:
            await self._cancel_inflight(batch_id)
        elif status == "in_progress":
            await self._submit_more(raw, requests)
        if await self.redis.hlen(inflight_key(batch_id)):
            return
        cursor = int(await self.redis.hget(batch_key(batch_id), "cursor") or 0)
        if status == "cancelling":
            await self._finish(batch_id, "cancelling", "cancelled")
        elif expired:
            await self._expire_unsent(batch_id, requests, cursor)
            await self._finish(batch_id, "in_progress", "expired")
        elif cursor >= len(requests):
            await self.batches.move(batch_id, ("in_progress",), "finalizing", finalizing_at=int(time.time()))
            await self._finish(batch_id, "finalizing", "completed")

    async def _validate(self, raw: dict) -> None:
        content = await self.files.content(raw["tenant"], raw["input_file_id"])
        if content is None:
            requests: list[tuple[str, dict]] = []
            errors: list[dict] = [
                {
                    "code": "file_not_found",
                    "message": "the input file was deleted",
                    "param": "input_file_id",
                    "line": None,
                }
            ]
        else:
            # a file of up to VIREO_MAX_BODY_BYTES: parsed off the event loop, which serves every request
            requests, errors = await asyncio.to_thread(parse_requests, content, raw["endpoint"], self.lines)
        now = int(time.time())
        if errors:
            await self.batches.move(raw["id"], ("validating",), "failed", failed_at=now, errors=json.dumps(errors))
            await self.redis.srem(BATCHES_OPEN_KEY, raw["id"])
            return
        self._requests[raw["id"]] = requests
        await self.batches.move(raw["id"], ("validating",), "in_progress", in_progress_at=now, total=len(requests))

    async def _requests_of(self, raw: dict) -> list[tuple[str, dict]]:
        if raw["id"] not in self._requests:  # after a restart: the file was valid when the batch started
            content = await self.files.content(raw["tenant"], raw["input_file_id"]) or b""
            parsed = await asyncio.to_thread(parse_requests, content, raw["endpoint"], self.lines)
            self._requests[raw["id"]] = parsed[0]
        return self._requests[raw["id"]]

    async def _submit_more(self, raw: dict, requests: list[tuple[str, dict]]) -> None:
        batch_id, principal = raw["id"], principal_of(raw)
        cursor = int(await self.redis.hget(batch_key(batch_id), "cursor") or 0)
        while (
            not self._stopping.is_set()
            and cursor < len(requests)
            and await self.redis.hlen(inflight_key(batch_id)) < self.max_inflight
        ):
            custom_id, body = requests[cursor]
            try:
                job_id = await self.lines.submit(principal, raw["endpoint"], body)
            except LimitExceeded as exc:
                if exc.limit != "tokens":
                    return  # the tenant is at its concurrency limit: this line waits for a free slot
                await self._record(
                    batch_id,
                    cursor,
                    None,
                    custom_id,
                    _failure(429, {"error": {"message": exc.message, "type": "rate_limit_error", "code": 429}}),
                )
            except LineError as exc:
                await self._record(batch_id, cursor, None, custom_id, _failure(exc.status_code, exc.body))
            else:
                await self.redis.hset(inflight_key(batch_id), str(cursor), job_id)
            cursor += 1
            await self.redis.hset(batch_key(batch_id), "cursor", cursor)

    async def _collect(self, raw: dict, requests: list[tuple[str, dict]]) -> None:
        """Record the reply of every in-flight line whose job has ended."""
        batch_id = raw["id"]
        for line, job_id in (await self.redis.hgetall(inflight_key(batch_id))).items():
            record = await self.jobs.store.get(job_id)
            if record is not None and record["status"] not in TERMINAL:
                continue
            custom_id = requests[int(line)][0] if int(line) < len(requests) else line
            if record is None:
                result = _lost("the job's record expired before its reply was collected")
            elif record["status"] == "succeeded":
                result = {
                    "response": {
                        "status_code": 200,
                        "request_id": job_id,
                        "body": self.lines.reply(raw["endpoint"], job_id, record),
                    },
                    "error": None,
                }
            elif record["status"] == "cancelled":
                result = _lost("the request's job was cancelled before it finished", "batch_cancelled")
            else:
                result = _failure(
                    500,
                    {
                        "error": {
                            "message": record.get("error") or "the job failed",
                            "type": "server_error",
                            "code": 500,
                        }
                    },
                    job_id,
                )
            await self._record(batch_id, int(line), job_id, custom_id, result)

    async def _record(self, batch_id: str, line: int, job_id: str | None, custom_id: str, result: dict) -> None:
        """Keep one line's result and count it, in one transaction with its leaving the in-flight set."""
        ok = result["error"] is None and result["response"]["status_code"] == 200
        entry = {"id": f"batch_req_{job_id or uuid.uuid4().hex}", "custom_id": custom_id, **result}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(results_key(batch_id, "output" if ok else "errors"), json.dumps(entry))
            pipe.hdel(inflight_key(batch_id), str(line))
            pipe.hincrby(batch_key(batch_id), "completed" if ok else "failed", 1)
            await pipe.execute()

    async def _cancel_inflight(self, batch_id: str) -> None:
        for job_id in (await self.redis.hgetall(inflight_key(batch_id))).values():
            await self.jobs.cancel(job_id)

    async def _expire_unsent(self, batch_id: str, requests: list[tuple[str, dict]], cursor: int) -> None:
        for line in range(cursor, len(requests)):
            await self._record(
                batch_id,
                line,
                None,
                requests[line][0],
                _lost("this request was not run within the batch's 24h window", "batch_expired"),
            )
        await self.redis.hset(batch_key(batch_id), "cursor", len(requests))

    async def _finish(self, batch_id: str, from_state: str, to_state: str) -> None:
        """Write the output and error files, then end the batch."""
        raw = await self.redis.hgetall(batch_key(batch_id))
        fields = {}
        for kind, field in (("output", "output_file_id"), ("errors", "error_file_id")):
            if raw.get(field):  # written before a restart
                continue
            lines = await self.redis.lrange(results_key(batch_id, kind), 0, -1)
            if lines:
                created = await self.files.create(
                    raw["tenant"], "batch_output", f"{batch_id}_{kind}.jsonl", ("\n".join(lines) + "\n").encode()
                )
                await self.redis.hset(batch_key(batch_id), field, created["id"])
                fields[field] = created["id"]
        if await self.batches.move(batch_id, (from_state,), to_state, **{f"{to_state}_at": int(time.time())}):
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(results_key(batch_id, "output"), results_key(batch_id, "errors"), inflight_key(batch_id))
                pipe.srem(BATCHES_OPEN_KEY, batch_id)
                await pipe.execute()
            self._requests.pop(batch_id, None)


def _failure(status_code: int, body: dict, request_id: str | None = None) -> dict:
    return {"response": {"status_code": status_code, "request_id": request_id, "body": body}, "error": None}


def _lost(message: str, code: str = "request_lost") -> dict:
    return {"response": None, "error": {"code": code, "message": message}}
