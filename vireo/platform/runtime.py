"""A worker process's runtime: one engine, loaded once, on one event loop in a background thread.

Celery's thread pool runs many tasks at once; each hands its job to this loop, where every job's
app shares the engine (so continuous batching sees them together) and waits for the result. A job
runs as one attempt (attempts.py): claimed, heartbeated while this worker holds it, finished or,
on SIGTERM, handed back as a new attempt after a drain timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict
from functools import partial
from typing import Any

from vireo.apps.base import AppInputError, JobCancelled
from vireo.apps.registry import UnknownAppError, get_app
from vireo.inference.api import Engine, EngineError
from vireo.inference.engine_process import EngineProcess
from vireo.inference.factory import create_engine
from vireo.platform.attempt_watch import AttemptWatch
from vireo.platform.attempts import Attempts, Claim
from vireo.platform.context import JobContext
from vireo.platform.event_writer import EventWriter
from vireo.platform.heartbeat import Heartbeat
from vireo.platform.job_outcome import report_from_store
from vireo.platform.logs import configure_logging
from vireo.platform.queue import TaskPublisher, republish_handed_back
from vireo.platform.services import configure_app_services
from vireo.platform.settings import Settings
from vireo.platform.store import JobStore

log = logging.getLogger(__name__)


EXIT_ENGINE_LOST = 70  # the worker's exit status when its engine's process died under it


def engine_lost(reason: str) -> None:
    """The engine's own process died: exit at once, before any job is failed for it. The jobs stay
    `running` under this worker's id; its heartbeat expires and the reaper re-runs them elsewhere."""
    log.critical("%s; the worker exits so that its jobs run again on another worker", reason)
    logging.shutdown()
    os._exit(EXIT_ENGINE_LOST)


class WorkerDraining(Exception):
    """The worker got SIGTERM: it claims no new job."""


class WorkerRuntime:
    """Owns the event loop thread, the job store on that loop, the engine and the heartbeat."""

    def __init__(self, settings: Settings):
        self.settings = settings
        configure_app_services(settings)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="vireo-engine-loop", daemon=True)
        self.thread.start()
        self.store: JobStore = self.call(self._make_store())
        self.attempts = Attempts(self.store)
        self.writer = EventWriter(self.attempts)  # every running job's events, written together
        self.watch = AttemptWatch(self.attempts, settings.cancel_poll_s)  # and their attempts, polled together
        self.engine: Engine = self.call(self._make_engine())
        self.call(self._start_stats())
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.draining = False
        self._held: Counter[tuple[str, int]] = Counter()  # a duplicate message may hold a job twice
        self._held_lock = threading.Lock()
        self.loop_seen = time.monotonic()
        self.loop.call_soon_threadsafe(self._mark_loop_alive)
        self.heartbeat = Heartbeat(
            settings.redis_url,
            self.worker_id,
            settings.worker_heartbeat_s,
            settings.worker_ttl_s,
            self.held,
            settings.queue,
            alive=self.loop_answers,
            model=settings.model,
            about={
                "backend": self.engine.backend,
                "device": str(getattr(getattr(self.engine, "config", settings.engine), "device", "")),
                "capacity": settings.worker_concurrency,
            },
        )
        self.heartbeat.start()

    def _mark_loop_alive(self) -> None:
        """Stamped by the event loop itself every second: the heartbeat's proof that the loop still turns."""
        self.loop_seen = time.monotonic()
        self.loop.call_later(1.0, self._mark_loop_alive)

    def loop_answers(self) -> bool:
        """False once the engine's loop has not turned for `worker_stall_s`: a hung worker stops announcing
        itself, so the reaper re-runs its jobs elsewhere (a long engine step stays well inside the bound)."""
        return time.monotonic() - self.loop_seen < self.settings.worker_stall_s

    def call(self, coro, timeout: float | None = None):
        """Run a coroutine on the runtime's loop from any thread and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _make_store(self) -> JobStore:
        s = self.settings
        return JobStore(s.redis_url, s.job_ttl_s, s.events_maxlen)

    async def _make_engine(self) -> Engine:
        started = time.perf_counter()
        engine = await asyncio.to_thread(create_engine, self.settings.engine)
        if isinstance(engine, EngineProcess):  # the engine's own process logs as this one does
            engine.on_lost = engine_lost
            engine.child_initializer = partial(configure_logging, self.settings.log_level, self.settings.log_format)
        await engine.start()
        config = getattr(engine, "config", self.settings.engine)  # local engines hold it resolved for this machine
        log.info(
            "engine %s/%s ready on %s (%s) in %.1fs",
            engine.backend,
            engine.model_name,
            config.device,
            config.dtype,
            time.perf_counter() - started,
        )
        return engine

    async def _start_stats(self) -> None:
        async def publish():
            while True:
                try:
                    await self.store.publish_stats(self.settings.model, asdict(self.engine.stats()))
                except Exception:  # stats are best effort; never kill the loop
                    log.exception("publishing engine stats failed")
                await asyncio.sleep(1.0)

        self._stats_task = asyncio.create_task(publish())

    def held(self) -> dict[str, int]:
        """The jobs this worker holds (job id → attempt), as the heartbeat announces them."""
        with self._held_lock:
            return {job_id: attempt for job_id, attempt in self._held}

    @contextmanager
    def holding(self, job_id: str, attempt: int):
        """Hold the job from before its claim until its task ends, so every heartbeat after the claim lists it."""
        with self._held_lock:
            self._held[(job_id, attempt)] += 1
        try:
            yield
        finally:
            with self._held_lock:
                self._held[(job_id, attempt)] -= 1
                if self._held[(job_id, attempt)] <= 0:
                    del self._held[(job_id, attempt)]

    def claim(self, job_id: str, attempt: int) -> Claim:
        """Claimed (with the job's record) if this worker now runs the attempt; otherwise the reason the
        message is ignored."""
        if self.draining:
            raise WorkerDraining(f"worker {self.worker_id} is shutting down")
        return self.call(self.attempts.claim(job_id, attempt, self.worker_id))

    def run_claimed(self, job_id: str, attempt: int, record: dict[str, str]) -> str:
        """Run a claimed attempt to its end (from a Celery thread); returns the job's status."""
        return self.call(
            run_attempt(
                self.engine,
                self.attempts,
                job_id,
                attempt,
                record,
                writer=self.writer,
                watch=self.watch,
                max_job_s=self.settings.max_job_s,
                model=self.settings.model,
            )
        )

    def drain(self, publisher: TaskPublisher) -> None:
        """On SIGTERM: claim nothing new, give running jobs `drain_timeout_s` to finish, then hand the
        rest back as new attempts, published at once, so that the worker can exit without stranding them."""
        self.draining = True
        deadline = time.monotonic() + self.settings.drain_timeout_s
        while self.held() and time.monotonic() < deadline:
            time.sleep(0.1)
        reason = f"worker {self.worker_id} shut down before the job finished"
        handed = {
            job_id
            for job_id, attempt in self.held().items()
            if self.call(self.attempts.hand_back(job_id, attempt, self.worker_id, reason)) == "requeued"
        }
        if handed:
            self.call(republish_handed_back(self.attempts, publisher, handed))
        log.warning("worker %s drained; %d running job(s) handed back", self.worker_id, len(handed))


async def execute_job(
    engine: Engine, store: JobStore, job_id: str, attempt: int = 1, worker_id: str = "", cancel_poll_s: float = 0.1
) -> str:
    """Claim and run one attempt of a job. A job that is finished, cancelled, running elsewhere or at
    another attempt is left alone, so a redelivered or stale message never runs a job twice."""
    attempts = Attempts(store)
    claim = await attempts.claim(job_id, attempt, worker_id)
    if claim.record is None:
        return claim.outcome
    writer, watch = EventWriter(attempts), AttemptWatch(attempts, cancel_poll_s)
    try:
        return await run_attempt(engine, attempts, job_id, attempt, claim.record, writer=writer, watch=watch)
    finally:
        await asyncio.gather(writer.close(), watch.close())


async def run_attempt(
    engine: Engine,
    attempts: Attempts,
    job_id: str,
    attempt: int,
    record: dict[str, str],
    *,
    writer: EventWriter,
    watch: AttemptWatch,
    max_job_s: float | None = None,
    model: str | None = None,
) -> str:
    """Run a claimed attempt's app and finish the job, unless the job was handed to a newer attempt; the
    end is logged and counted under `model` (VIREO_MODEL; default: the engine's). The job's events go
    through `writer` and its cancellation or hand-back comes from `watch` (the worker's, shared by all
    its jobs). `record` is the job's record as the claim returned it."""
    store = attempts.store
    fields: dict[str, Any]
    try:
        app = get_app(record["app"])
    except UnknownAppError as exc:  # an app this worker lacks: no other attempt would do better
        status, fields, event = "failed", {"error": str(exc)}, ("error", {"error": str(exc)})
    else:
        ctx = JobContext(
            engine=engine,
            store=store,
            attempts=attempts,
            writer=writer,
            job_id=job_id,
            attempt=attempt,
            app_name=app.name,
            tenant=record["tenant"],
            options=json.loads(record.get("options") or "{}"),
            preferences=app.preferences,
        )
        status, fields, event = await _run_app(app, ctx, record, watch, max_job_s)
        await ctx.close()
    fields["finished_at"] = time.time()
    if await attempts.finish(job_id, attempt, record["tenant"], status, fields, event):
        await report_from_store(store, job_id, model or engine.model_name, record | fields, status)
        return status
    log.info("job %s moved on without attempt %d; its outcome (%s) is dropped", job_id, attempt, status)
    return (await store.get(job_id) or {}).get("status", "missing")


async def _run_app(
    app, ctx: JobContext, record: dict, watch: AttemptWatch, max_job_s: float | None = None
) -> tuple[str, dict[str, Any], tuple]:
    task = asyncio.create_task(app.run(ctx, app.Input.model_validate_json(record["input"])))
    watcher = asyncio.create_task(_watch(ctx, task, watch, max_job_s))
    try:
        output = await task
        result = app.Output.model_validate(output).model_dump(mode="json")
        return "succeeded", {"result": result}, ("result", {"result": result})
    except (JobCancelled, asyncio.CancelledError):
        if watcher.done() and not watcher.cancelled() and watcher.result() == "time limit":
            message = (
                f"the job ran longer than its time limit ({max_job_s:g} s, VIREO_MAX_JOB_S) and was "
                "stopped; send less work per job or raise the limit"
            )
            return "failed", {"error": message}, ("error", {"error": message})
        return "cancelled", {}, ("status", {"status": "cancelled"})
    except (AppInputError, EngineError, ValueError) as exc:
        return "failed", {"error": str(exc)}, ("error", {"error": str(exc)})
    except Exception as exc:  # a bug: keep the job and the worker alive, say what happened
        log.exception("job %s failed", ctx.job_id)
        message = f"internal error: {type(exc).__name__}: {exc}"
        return "failed", {"error": message}, ("error", {"error": message})
    finally:
        watcher.cancel()


async def _watch(ctx: JobContext, task: asyncio.Task, watch: AttemptWatch, max_job_s: float | None = None) -> str:
    """Stop the app when its job is cancelled, handed to a newer attempt (the reaper or a drain did), or
    past its time limit; returns why ("time limit" for the last).

    Cancelling the app's task raises CancelledError in `ctx.stream`, whose finally aborts in the engine.
    """
    job = (ctx.job_id, ctx.attempt)
    change = watch.watch(job)
    try:
        await asyncio.wait({task, change}, timeout=max_job_s or None, return_when=asyncio.FIRST_COMPLETED)
        if change.done():
            state = change.result()
            ctx.cancel_flag = state == "cancel"
            task.cancel()
            return state
        if task.done():
            return "done"
        task.cancel()
        return "time limit"
    finally:
        watch.forget(job)
