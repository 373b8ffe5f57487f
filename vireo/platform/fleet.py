"""Who serves what, read from Redis: live workers (their heartbeats) and the jobs waiting for them.

For `/readyz` (is a live worker serving this API's model on its queue?), `vireo worker-health` (is
this container's worker beating?) and the `/metrics` gauges.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from kombu.transport.redis import PRIORITY_STEPS, Channel
from prometheus_client.core import GaugeMetricFamily, Metric

from vireo.platform.redis_keys import QUEUED_KEY, RUNNING_KEY, WORKERS_KEY, worker_key

# drop index entries whose heartbeat key has expired, atomically: a worker beating now keeps its entry
_PRUNE = """
local gone = 0
for _, id in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[1] .. id) == 0 then gone = gone + redis.call('SREM', KEYS[2], id) end
end
return gone
"""


@dataclass(frozen=True)
class LiveWorker:
    id: str
    host: str
    queue: str
    model: str
    jobs: int  # the jobs it holds now
    backend: str = ""
    device: str = ""
    capacity: int = 0  # jobs it runs at once (VIREO_WORKER_CONCURRENCY)


async def live_workers(redis) -> list[LiveWorker]:
    """Workers whose heartbeat key has not expired (a hung worker stops beating: not live)."""
    ids = sorted(await redis.smembers(WORKERS_KEY))
    if not ids:
        return []
    beats = await redis.mget([worker_key(i) for i in ids])
    if None in beats:
        await redis.eval(_PRUNE, 2, worker_key(""), WORKERS_KEY, *[i for i, b in zip(ids, beats) if b is None])
    workers = []
    for worker_id, raw in zip(ids, beats):
        if raw is not None:
            beat = json.loads(raw)
            workers.append(
                LiveWorker(
                    worker_id,
                    beat.get("host", ""),
                    beat.get("queue", ""),
                    beat.get("model", ""),
                    len(beat.get("jobs") or {}),
                    beat.get("backend", ""),
                    beat.get("device", ""),
                    int(beat.get("capacity") or 0),
                )
            )
    return workers


def broker_queue_keys(queue: str) -> list[str]:
    """The Redis lists kombu keeps a queue's messages in, one per priority step (celery_app.py)."""
    return [queue] + [f"{queue}{Channel.sep}{step}" for step in PRIORITY_STEPS if step]


async def broker_backlog(redis, queue: str) -> int:
    """Messages waiting in the broker for `queue` (not yet taken by a worker)."""
    async with redis.pipeline(transaction=False) as pipe:
        for key in broker_queue_keys(queue):
            pipe.llen(key)
        return sum(await pipe.execute())


async def read_families(redis, configured: set[tuple[str, str]]) -> list[Metric]:
    """Gauges of the moment: live workers and waiting messages per queue and model (every (queue, model)
    this API serves, and every one a live worker serves), and the queued and running job records."""
    workers = await live_workers(redis)
    served = configured | {(w.queue, w.model) for w in workers}
    live = GaugeMetricFamily(
        "vireo_workers_live", "Workers whose heartbeat is current, by queue and model", labels=["queue", "model"]
    )
    backlog = GaugeMetricFamily(
        "vireo_queue_messages",
        "Job messages waiting in the broker (Celery's Redis lists), by queue and the model its workers serve",
        labels=["queue", "model"],
    )
    for q, m in sorted(served):
        live.add_metric([q, m], sum(1 for w in workers if (w.queue, w.model) == (q, m)))
        backlog.add_metric([q, m], await broker_backlog(redis, q))
    held = GaugeMetricFamily("vireo_worker_jobs", "Jobs each live worker holds", labels=["worker", "queue", "model"])
    for w in workers:
        held.add_metric([w.id, w.queue, w.model], w.jobs)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(QUEUED_KEY)
        pipe.scard(RUNNING_KEY)
        queued, running = await pipe.execute()
    return [
        live,
        backlog,
        held,
        GaugeMetricFamily(
            "vireo_jobs_queued",
            "Job records waiting for a worker (status queued; a job "
            "cancelled while queued leaves within one reaper sweep)",
            value=queued,
        ),
        GaugeMetricFamily("vireo_jobs_running", "Job records running on a worker", value=running),
    ]
