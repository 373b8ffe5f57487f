"""Publishing job tasks to the broker cheaply.

`celery_app.send_task` re-resolves routes and options and acquires a producer from a pool on every
call (~4 ms of CPU here); the API publishes one kind of task to one queue, so it keeps one producer
and builds the message with Celery's own `create_task_message` (the same wire format), ~3x cheaper.
"""

from __future__ import annotations

import logging

from celery import Celery

log = logging.getLogger(__name__)
RUN_JOB = "vireo.run_job"


class TaskPublisher:
    """One persistent producer for `vireo.run_job` messages (use from one thread)."""

    def __init__(self, celery_app: Celery, queue: str):
        self.celery_app = celery_app
        self.queue = queue
        self._producer = None

    def _get_producer(self):
        if self._producer is None:
            connection = self.celery_app.connection_for_write()
            connection.ensure_connection(max_retries=3)
            self._producer = self.celery_app.amqp.Producer(connection, auto_declare=False)
        return self._producer

    def publish(self, job_id: str, priority: int = 0) -> None:
        amqp = self.celery_app.amqp
        message = amqp.create_task_message(job_id, RUN_JOB, [job_id], {})
        try:
            amqp.send_task_message(self._get_producer(), RUN_JOB, message, queue=self.queue,
                                   retry=False, declare=[], priority=priority)
        except Exception:  # a dropped connection: start over with Celery's retrying path
            log.warning("fast publish failed; retrying through send_task", exc_info=True)
            self.close()
            self.celery_app.send_task(RUN_JOB, args=[job_id], task_id=job_id, queue=self.queue,
                                      priority=priority)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.connection.release()
            self._producer = None
