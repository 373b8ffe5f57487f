"""Job metrics that workers record in Redis and the API's `/metrics` renders: histograms of queue wait,
time to first token, time per output token and job duration, and jobs finished by app and status.

Why Redis and not a `/metrics` port per worker: workers come and go (scaled, killed, restarted on
other hosts), so a per-process registry loses its counts with its process and needs every worker
found and scraped; prometheus_client's multiprocess mode shares files on one host only. Every
worker already writes its jobs to Redis, so each job end adds one pipeline there (one HINCRBY per
histogram bucket hit and sum, one per counter) and any API replica renders the totals: counts
survive the worker that recorded them, and Prometheus scrapes one target. Redis holds them as long
as it keeps its data (AOF); a flushed Redis is a counter reset, which `rate()` handles.

Buckets are stored per bucket (not cumulative: one HINCRBY per observation) in a hash per
histogram, fields `["model", "app", "<upper bound>"]` and `["model", "app", "sum"]` (JSON lists, so no
name can break the key); counters in `vireo:metrics:jobs_finished`, fields `["model", "app", "status"]`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from vireo.platform.redis_keys import FINISHED_KEY, histogram_key


@dataclass(frozen=True)
class HistogramSpec:
    name: str
    help: str
    buckets: tuple[float, ...]  # upper bounds; +Inf is implied

    @property
    def key(self) -> str:
        return histogram_key(self.name)

    def bucket_of(self, value: float) -> str:
        return next((_le(b) for b in self.buckets if value <= b), "+Inf")


HISTOGRAMS = {
    spec.name: spec
    for spec in (
        HistogramSpec(
            "vireo_job_queue_wait_seconds",
            "From submit to the start of the attempt that ended the job",
            (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
        ),
        HistogramSpec(
            "vireo_job_ttft_seconds",
            "Time to first token: from the attempt's start on a worker to its "
            "first generated token (succeeded jobs that generated)",
            (0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
        ),
        HistogramSpec(
            "vireo_job_time_per_output_token_seconds",
            "Mean time between output tokens after the first, "
            "per job (the inter-token latency a reader sees; succeeded jobs with 2+ tokens)",
            (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2),
        ),
        HistogramSpec(
            "vireo_job_duration_seconds",
            "From the attempt's start on a worker to the job's end (succeeded jobs)",
            (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
        ),
    )
}


def _le(bound: float) -> str:
    return repr(float(bound))


def _field(*labels: str) -> str:
    return json.dumps(list(labels))


def add_observations(pipe, model: str, app: str, status: str, observed: dict[str, float | None]) -> None:
    """Queue one job's end on a Redis pipeline: the finished counter and each histogram with a value."""
    pipe.hincrby(FINISHED_KEY, _field(model, app, status), 1)
    for name, value in observed.items():
        if value is None or not math.isfinite(value):
            continue
        spec = HISTOGRAMS[name]
        pipe.hincrby(spec.key, _field(model, app, spec.bucket_of(max(0.0, value))), 1)
        pipe.hincrbyfloat(spec.key, _field(model, app, "sum"), max(0.0, value))


async def read_families(redis) -> list[Metric]:
    """The recorded job metrics as Prometheus metric families (empty families while nothing ended)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(FINISHED_KEY)
        for spec in HISTOGRAMS.values():
            pipe.hgetall(spec.key)
        finished, *histograms = await pipe.execute()
    counter = CounterMetricFamily(
        "vireo_jobs_finished",
        "Jobs that ended, by model, app and final status (succeeded, failed, cancelled)",
        labels=["model", "app", "status"],
    )
    for field, count in sorted(finished.items()):
        counter.add_metric(json.loads(field), float(count))
    return [counter, *(_histogram(spec, raw) for spec, raw in zip(HISTOGRAMS.values(), histograms))]


def _histogram(spec: HistogramSpec, raw: dict[str, str]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(spec.name, spec.help, labels=["model", "app"])
    series: dict[tuple[str, str], dict[str, float]] = {}
    for field, value in raw.items():
        model, app, bound = json.loads(field)
        series.setdefault((model, app), {})[bound] = float(value)
    for (model, app), counts in sorted(series.items()):
        cumulative, buckets = 0.0, []
        for bound in [_le(b) for b in spec.buckets] + ["+Inf"]:
            cumulative += counts.get(bound, 0.0)
            buckets.append((bound, cumulative))
        family.add_metric([model, app], buckets, counts.get("sum", 0.0))
    return family
