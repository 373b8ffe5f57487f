"""The Celery application: Redis as broker and result backend, tuned for long LLM jobs."""

from __future__ import annotations

from celery import Celery

from vireo.platform.settings import get_settings


def make_celery() -> Celery:
    settings = get_settings()
    app = Celery("vireo", broker=settings.redis_url, backend=settings.redis_url,
                 include=["vireo.platform.tasks"])
    app.conf.update(
        task_acks_late=True,  # a job is acknowledged only once it ran, so a lost worker's job is redelivered
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": settings.max_job_s * 2,
                                  "queue_order_strategy": "priority"},
        result_expires=settings.job_ttl_s,
        task_default_queue=settings.queue,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )
    return app


celery_app = make_celery()
