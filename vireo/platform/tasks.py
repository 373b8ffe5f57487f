"""Thin Celery tasks: they hand the job to the worker's runtime (loaded once per process).

When a message is acknowledged decides what a crash can do (kombu's Redis transport keeps each
delivered message in `unacked` until its ack, and any worker's `restore_visible` puts messages older
than `visibility_timeout` back on the queue):
- acked at delivery (Celery's default), a worker killed before it marked the job running would lose
  the job's only message;
- acked when the task ends (plain `acks_late`), a job running longer than the visibility timeout is
  redelivered while it runs, and a dead worker's message comes back only after that timeout.
So the task acks its message the moment its job is claimed (attempts.py). Before the claim the
message is kombu's to redeliver (after `VIREO_REDELIVERY_S`); from the claim on, the job record is
the truth: the worker's heartbeat keeps it, the reaper hands it back when the worker dies, and a
redelivered copy of the message finds the job already claimed, finished or at a newer attempt and
is acked without running anything.
"""

from __future__ import annotations

import threading

from celery.exceptions import Reject
from celery.signals import worker_process_init, worker_ready, worker_shutdown, worker_shutting_down
from celery.worker.request import Request

from vireo.platform.celery_app import celery_app
from vireo.platform.queue import RUN_JOB, TaskPublisher
from vireo.platform.runtime import WorkerRuntime
from vireo.platform.settings import Settings, get_settings

_runtime: WorkerRuntime | None = None
_settings: Settings | None = None  # set by `vireo serve worker` (its --model); else read when the runtime starts
_lock = threading.Lock()
_delivery = threading.local()


def serve_settings(settings: Settings) -> Settings:
    """The settings this worker process serves with (one model's: `Settings.for_worker`)."""
    global _settings
    _settings = settings
    return settings


def get_runtime() -> WorkerRuntime:
    """The process's runtime; the engine loads on first use, once."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = WorkerRuntime(_settings or get_settings().for_worker())  # its model's engine and queue
        return _runtime


@worker_ready.connect
@worker_process_init.connect
def _load_engine_at_start(**_kwargs) -> None:
    get_runtime()


@worker_shutting_down.connect
def _drain(how: str = "Warm", **_kwargs) -> None:
    """SIGTERM (a warm shutdown): Celery stops consuming and waits for running tasks; the runtime
    bounds that wait by handing late jobs back. Not a daemon thread: the exit waits for its publish."""
    if how == "Warm" and _runtime is not None:
        publisher = TaskPublisher(celery_app, _runtime.settings.queue)
        threading.Thread(target=_runtime.drain, args=(publisher,), name="vireo-drain").start()


@worker_shutdown.connect
def _stop_heartbeat(**_kwargs) -> None:
    if _runtime is not None:
        _runtime.heartbeat.stop()


class JobDelivery(Request):
    """Celery's request for one message, reachable from the pool thread that runs its task (the threads
    pool calls `on_accepted` and then the task in the same thread), so the task can ack at claim time.
    Under another pool the message is acked when the task ends, which is safe, only slower to recover."""

    def on_accepted(self, pid, time_accepted):
        _delivery.request = self
        super().on_accepted(pid, time_accepted)


def _acknowledge_delivery() -> None:
    request, _delivery.request = getattr(_delivery, "request", None), None
    if request is not None:
        request.acknowledge()


@celery_app.task(name=RUN_JOB, acks_late=True, Request=JobDelivery)
def run_job(job_id: str, attempt: int = 1) -> str:
    runtime = get_runtime()
    with runtime.holding(job_id, attempt):
        try:
            claim = runtime.claim(job_id, attempt)
        except Exception as exc:  # draining, or Redis unreachable: the message goes back to the queue
            raise Reject(str(exc), requeue=True) from exc
        if claim.record is None:
            return claim.outcome  # a stale or duplicate message: acked, nothing runs
        _acknowledge_delivery()
        return runtime.run_claimed(job_id, attempt, claim.record)
