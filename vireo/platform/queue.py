"""Publishing job tasks to the broker cheaply.

`celery_app.send_task` re-resolves routes and options and acquires a producer from a pool on every
call (~4 ms of CPU here); the API publishes one kind of task to one queue, so it keeps one producer
and builds the message with Celery's own `create_task_message` (the same wire format), ~3x cheaper.
When the broker is unreachable, `publish` raises `BrokerUnavailable` (the API answers 503).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from celery import Celery

if TYPE_CHECKING:
    from vireo.platform.attempts import Attempts

log = logging.getLogger(__name__)
RUN_JOB = "vireo.run_job"


class BrokerUnavailable(Exception):
    """The broker (Redis) did not take a job's message, even on a fresh connection."""


class TaskPublisher:
    """One persistent producer for `vireo.run_job` messages (use from one thread)."""

    def __init__(self, celery_app: Celery, queue: str):
        self.celery_app = celery_app
        self.queue = queue
        self._producer = None

    def _get_producer(self):
        if self._producer is None:
            connection = self.celery_app.connection_for_write()
            # no sleeps between attempts: this runs on the API's event loop, and a refused connection
            # is answered at once; the caller turns the failure into a 503
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2)
            self._producer = self.celery_app.amqp.Producer(connection, auto_declare=False)
        return self._producer

    def publish(self, job_id: str, priority: int = 0, attempt: int = 1, queue: str | None = None) -> None:
        """Send the task for the job's `attempt` (a worker runs the job only while it is at that attempt) to
        `queue` (its model's; default: this publisher's); a stale pooled connection is retried once on a
        fresh one."""
        amqp = self.celery_app.amqp
        message = amqp.create_task_message(job_id, RUN_JOB, [job_id, attempt], {}, ignore_result=True)
        for try_number in (1, 2):
            try:
                amqp.send_task_message(
                    self._get_producer(),
                    RUN_JOB,
                    message,
                    queue=queue or self.queue,
                    retry=False,
                    declare=[],
                    priority=priority,
                )
                return
            except Exception as exc:  # kombu raises its own errors, redis-py's and OSError alike
                self.close()
                if try_number == 2:
                    raise BrokerUnavailable(f"the job queue (Redis) did not take job {job_id}: {exc}") from exc
                log.warning("publishing job %s failed; retrying on a fresh connection", job_id, exc_info=True)

    def task_ids_in_broker(self, queues: set[str] | None = None) -> set[str]:
        """Ids of the tasks (job ids) the broker holds for `queues` (default: this publisher's): waiting at
        any priority, or delivered and not acked yet (kombu's `unacked` hash, which every queue of the
        database shares)."""
        try:
            channel = self._get_producer().channel
            keys = [
                channel._q_for_pri(queue, priority)
                for queue in sorted(queues or {self.queue})
                for priority in channel.priority_steps
            ]
            with channel.conn_or_acquire() as client, client.pipeline(transaction=True) as pipe:
                for key in keys:
                    pipe.lrange(key, 0, -1)
                pipe.hvals(channel.unacked_key)
                *waiting, unacked = pipe.execute()
        except Exception as exc:
            self.close()
            raise BrokerUnavailable(f"could not read the job queue (Redis): {exc}") from exc
        found = [json.loads(message) for messages in waiting for message in messages]
        found += [json.loads(entry)[0] for entry in unacked]
        return {message.get("headers", {}).get("id") for message in found}

    def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                producer.connection.release()
            except Exception:  # a connection that already died has nothing left to release
                log.debug("releasing a dead broker connection failed", exc_info=True)


def broker_priority(options: dict) -> int:
    """The broker priority (0..9, lower first) of a job's `priority` option (-10..10)."""
    return max(0, min(9, (options.get("priority") or 0) + 5))


# A job that runs again has waited its turn already: its new message goes first in line.
RERUN_PRIORITY = 0


async def republish_handed_back(attempts: Attempts, publisher: TaskPublisher, only: set[str] | None = None) -> int:
    """Publish the message of every handed-back job still waiting for one (the outbox of attempts.py)."""
    waiting = await attempts.handed_back(only)
    for job_id, attempt, queue in waiting:
        publisher.publish(job_id, RERUN_PRIORITY, attempt, queue or None)
        await attempts.published(job_id)
    return len(waiting)


async def republish_lost(attempts: Attempts, publisher: TaskPublisher, published_before: float) -> int:
    """Publish again the message of every job queued since before `published_before` whose message the
    broker no longer holds: kombu pops a message (BRPOP) before recording it as unacked, so a worker
    killed in between takes it along. A duplicate of a message still in flight somewhere is harmless:
    only one of them can claim the job."""
    suspects = await attempts.queued_since(published_before)
    if not suspects:
        return 0
    present = publisher.task_ids_in_broker({queue or publisher.queue for _, _, queue in suspects})
    lost = [(job_id, attempt, queue) for job_id, attempt, queue in suspects if job_id not in present]
    for job_id, attempt, queue in lost:
        log.warning("job %s attempt %d: its message is gone from the broker; publishing it again", job_id, attempt)
        publisher.publish(job_id, RERUN_PRIORITY, attempt, queue or None)
        await attempts.published(job_id)
    return len(lost)
