"""A worker process's runtime: one engine, loaded once, on one event loop in a background thread.

Celery's thread pool runs many tasks at once; each hands its job to this loop, where every job's
app shares the engine (so continuous batching sees them together) and waits for the result.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from dataclasses import asdict

from vireo.apps.base import AppInputError, JobCancelled
from vireo.apps.registry import get_app
from vireo.inference.api import Engine, EngineError
from vireo.inference.factory import create_engine
from vireo.platform.context import JobContext
from vireo.platform.services import configure_app_services
from vireo.platform.settings import Settings
from vireo.platform.store import TERMINAL, JobStore

log = logging.getLogger(__name__)


class WorkerRuntime:
    """Owns the event loop thread, the job store on that loop, and the engine."""

    def __init__(self, settings: Settings):
        self.settings = settings
        configure_app_services(settings)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="vireo-engine-loop", daemon=True)
        self.thread.start()
        self.store: JobStore = self.call(self._make_store())
        self.engine: Engine = self.call(self._make_engine())
        self.call(self._start_stats())

    def call(self, coro, timeout: float | None = None):
        """Run a coroutine on the runtime's loop from any thread and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _make_store(self) -> JobStore:
        s = self.settings
        return JobStore(s.redis_url, s.job_ttl_s, s.events_maxlen)

    async def _make_engine(self) -> Engine:
        started = time.perf_counter()
        engine = await asyncio.to_thread(create_engine, self.settings.engine, self.settings.engine_config())
        await engine.start()
        log.info("engine %s/%s ready in %.1fs", engine.backend, engine.model_name, time.perf_counter() - started)
        return engine

    async def _start_stats(self) -> None:
        async def publish():
            while True:
                try:
                    await self.store.publish_stats(asdict(self.engine.stats()))
                except Exception:  # stats are best effort; never kill the loop
                    log.exception("publishing engine stats failed")
                await asyncio.sleep(1.0)

        self._stats_task = asyncio.create_task(publish())

    def run_job(self, job_id: str) -> str:
        """Execute one job to its end (from a Celery thread); returns the final status."""
        return self.call(execute_job(self.engine, self.store, job_id, self.settings.cancel_poll_s))

    def shutdown(self) -> None:
        self.call(self.engine.shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)


async def execute_job(engine: Engine, store: JobStore, job_id: str, cancel_poll_s: float = 0.1) -> str:
    """Run a queued job's app; safe to call twice (a finished or cancelled job is not run again)."""
    record = await store.get(job_id)
    if record is None:
        return "missing"
    if record["status"] in TERMINAL:
        return record["status"]
    if not await store.transition(job_id, ("queued", "running"), "running", started_at=time.time()):
        return (await store.get(job_id) or {}).get("status", "missing")
    await store.emit(job_id, "status", {"status": "running"})
    app = get_app(record["app"])
    ctx = JobContext(engine=engine, store=store, job_id=job_id, app_name=app.name,
                     tenant=record["tenant"], options=json.loads(record.get("options") or "{}"),
                     preferences=app.preferences)
    ctx.start()
    status, fields, event = await _run_app(app, ctx, record, cancel_poll_s)
    await ctx.close()
    fields["finished_at"] = time.time()
    if await store.transition(job_id, ("running",), status, **fields):
        await store.emit(job_id, *event)
    final = (await store.get(job_id) or {}).get("status", status)
    await store.emit(job_id, "end", {"status": final})
    return final


async def _run_app(app, ctx: JobContext, record: dict, cancel_poll_s: float) -> tuple[str, dict, tuple]:
    task = asyncio.create_task(app.run(ctx, app.Input.model_validate_json(record["input"])))
    watcher = asyncio.create_task(_watch_cancel(ctx, task, cancel_poll_s))
    try:
        output = await task
        result = app.Output.model_validate(output).model_dump(mode="json")
        return "succeeded", {"result": result}, ("result", {"result": result})
    except (JobCancelled, asyncio.CancelledError):
        return "cancelled", {}, ("status", {"status": "cancelled"})
    except (AppInputError, EngineError, ValueError) as exc:
        return "failed", {"error": str(exc)}, ("error", {"error": str(exc)})
    except Exception as exc:  # a bug: keep the job and the worker alive, say what happened
        log.exception("job %s failed", ctx.job_id)
        message = f"internal error: {type(exc).__name__}: {exc}"
        return "failed", {"error": message}, ("error", {"error": message})
    finally:
        watcher.cancel()


async def _watch_cancel(ctx: JobContext, task: asyncio.Task, poll_s: float) -> None:
    """Poll the job's cancel flag; on cancel, flag the context and cancel the app's task."""
    while not task.done():
        if await ctx.store.cancel_requested(ctx.job_id):
            ctx.cancel_flag = True
            task.cancel()  # CancelledError reaches ctx.stream, whose finally aborts in the engine
            return
        await asyncio.sleep(poll_s)
