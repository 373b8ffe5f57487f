"""The Celery application: Redis as broker and result backend, tuned for long LLM jobs."""

from __future__ import annotations

from celery import Celery
from celery.signals import setup_logging

from vireo.platform.logs import configure_logging
from vireo.platform.settings import get_settings


def make_celery() -> Celery:
    settings = get_settings()
    app = Celery("vireo", broker=settings.redis_url, backend=settings.redis_url, include=["vireo.platform.tasks"])
    app.conf.update(
        # a message is acked once its job is claimed, not before (tasks.py says why): a worker that dies
        # before its claim leaves the message to kombu, which redelivers it after `redelivery_s`
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,  # job state lives in the job record; nothing reads Celery's results
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=True,  # take a message only for a free thread: none waits unclaimed in a worker
        broker_transport_options={
            "visibility_timeout": settings.redelivery_s,
            "unacked_restore_interval": max(1, settings.redelivery_s // 4),
            "unacked_restore_throttle": 1,
            # a worker killed inside a restore sweep must not block the next ones long
            "unacked_mutex_expire": settings.redelivery_s,
            "queue_order_strategy": "priority",
        },
        broker_connection_max_retries=None,  # a worker waits for Redis to come back, however long it takes
        result_expires=settings.job_ttl_s,
        task_default_queue=settings.queue,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )
    return app


celery_app = make_celery()


@setup_logging.connect
def _log_like_every_vireo_process(loglevel=None, **_kwargs) -> None:
    """With a receiver for this signal Celery configures no logging of its own: the worker's lines, Celery's
    included, come out in VIREO_LOG_FORMAT at `--loglevel` (default VIREO_LOG_LEVEL)."""
    settings = get_settings()
    configure_logging(loglevel or settings.log_level, settings.log_format)
