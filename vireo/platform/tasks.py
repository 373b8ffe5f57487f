"""Thin Celery tasks: they hand the job to the worker's runtime (loaded once per process)."""

from __future__ import annotations

import threading

from celery.signals import worker_process_init, worker_ready

from vireo.platform.celery_app import celery_app
from vireo.platform.runtime import WorkerRuntime
from vireo.platform.settings import get_settings

_runtime: WorkerRuntime | None = None
_lock = threading.Lock()


def get_runtime() -> WorkerRuntime:
    """The process's runtime; the engine loads on first use, once."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = WorkerRuntime(get_settings())
        return _runtime


@worker_ready.connect
@worker_process_init.connect
def _load_engine_at_start(**_kwargs) -> None:
    get_runtime()


@celery_app.task(name="vireo.run_job", acks_late=True, reject_on_worker_lost=True)
def run_job(job_id: str) -> str:
    return get_runtime().run_job(job_id)
