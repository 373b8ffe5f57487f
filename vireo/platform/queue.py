"""Publishing job tasks to the broker cheaply.

`celery_app.send_task` re-resolves routes and options and acquires a producer from a pool on every
call (~4 ms of CPU here); the API publishes one kind of task to one queue, so it keeps one producer
and builds the message with Celery's own `create_task_message` (the same wire format), ~3x cheaper.
The API does not even send it: `delivery_commands` hands kombu's final Redis commands to the job store, which
runs them in the transaction that stores the job (one round trip, and no job stored without its message).
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


class _CollectedDelivery:
    """Stands in for kombu's Redis publish batch (`Producer.batch`): the producer hands it the prepared
    message, the channel routes it and adds the final Redis commands here instead of running them."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, tuple]] = []

    def publish(self, channel, message, **kwargs):
        return channel.basic_publish(message, _publish_batch=self, **kwargs)

    def add(self, name: str, *args) -> None:
        self.commands.append((name, args))


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

    def delivery_commands(
        self, job_id: str, priority: int = 0, attempt: int = 1, queue: str | None = None
    ) -> list[tuple[str, tuple]]:
        """The Redis commands that deliver the message `publish` would send (an LPUSH onto the queue's
        priority list), for the caller to run in its own transaction: the API stores a job and enqueues it
        in one round trip, so no job is ever stored without its message. kombu builds and routes the
        message as for a publish; only the last step, running the commands, is left to the caller."""
        collected = _CollectedDelivery()
        try:
            producer = self._get_producer()  # connects once, the first time; the commands need no I/O
            producer._batch_local.current = collected  # kombu's hook for its own batched publishing
            try:
                self._send(producer, job_id, priority, attempt, queue)
            finally:
                del producer._batch_local.current
        except Exception as exc:  # kombu raises its own errors, redis-py's and OSError alike
            self.close()
            raise BrokerUnavailable(f"the job queue (Redis) is unreachable; job {job_id} was not taken: {exc}") from exc
        if not collected.commands:
            raise BrokerUnavailable(f"the job queue (Redis) gave no way to deliver job {job_id}")
        return collected.commands

    def _send(self, producer, job_id: str, priority: int, attempt: int, queue: str | None) -> None:
        amqp = self.celery_app.amqp
        message = amqp.create_task_message(job_id, RUN_JOB, [job_id, attempt], {}, ignore_result=True)
        amqp.send_task_message(
            producer, RUN_JOB, message, queue=queue or self.queue, retry=False, declare=[], priority=priority
        )

    def publish(self, job_id: str, priority: int = 0, attempt: int = 1, queue: str | None = None) -> None:
        """Send the task for the job's `attempt` (a worker runs the job only while it is at that attempt) to
        `queue` (its model's; default: this publisher's); a stale pooled connection is retried once on a
        fresh one."""
        for try_number in (1, 2):
            try:
                self._send(self._get_producer(), job_id, priority, attempt, queue)
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
