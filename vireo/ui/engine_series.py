"""The Engine page's short history: one sample per refresh per served model, kept for the last minutes,
and latency percentiles of recent jobs (no Streamlit here).

A sample is read from `GET /v1/engine/stats?model=…` (the worker's engine numbers) and `GET /v1/models`
(the jobs queued for the model); time to first token and the time between tokens come from the caller's
own recent jobs (`GET /v1/jobs`), the figures any key may read."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass

KEEP_S = 15 * 60  # samples older than this are dropped


@dataclass(frozen=True)
class Sample:
    at: float  # unix time
    tokens_per_s: float
    running: int
    waiting: int
    queued: int
    kv_used: float  # share of the KV-cache blocks in use, 0..1
    prefix_hit_rate: float
    spec_acceptance: float
    generated_tokens: int

    def row(self) -> dict:
        return {**asdict(self), "time": dt.datetime.fromtimestamp(self.at)}


def sample_of(stats: dict, model_entry: dict | None, at: float) -> Sample | None:
    """A sample from one stats reply (None when no worker has reported: the reply carries no numbers)."""
    if "running" not in stats:
        return None
    total = stats.get("kv_blocks_total") or 0
    return Sample(
        at=at,
        tokens_per_s=float(stats.get("tokens_per_s") or 0.0),
        running=int(stats.get("running") or 0),
        waiting=int(stats.get("waiting") or 0),
        queued=int((model_entry or {}).get("queued") or 0),
        kv_used=(stats.get("kv_blocks_used") or 0) / total if total else 0.0,
        prefix_hit_rate=float(stats.get("prefix_hit_rate") or 0.0),
        spec_acceptance=float(stats.get("spec_acceptance") or 0.0),
        generated_tokens=int(stats.get("generated_tokens") or 0),
    )


def add_sample(series: list[Sample], sample: Sample, keep_s: float = KEEP_S) -> list[Sample]:
    """The series with `sample` appended and samples older than `keep_s` before it dropped."""
    return [s for s in series if sample.at - s.at <= keep_s] + [sample]


def window(series: list[Sample], seconds: float, now: float) -> list[dict]:
    """Chart rows of the samples of the last `seconds`."""
    return [s.row() for s in series if now - s.at <= seconds]


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def job_latencies(job: dict) -> tuple[float | None, float | None]:
    """(time to first token from the start on a worker, mean time between the tokens after it) of a job."""
    t = job.get("timings") or {}
    started, first, finished = t.get("started_at"), t.get("first_token_at"), t.get("finished_at")
    ttft = first - started if started and first and first >= started else None
    tokens = (job.get("usage") or {}).get("completion_tokens") or 0
    itl = (finished - first) / (tokens - 1) if first and finished and tokens > 1 and finished >= first else None
    return ttft, itl


def latency_percentiles(jobs: list[dict], model: str, since: float) -> dict[str, float | None]:
    """p50 and p95 of TTFT and inter-token latency (seconds) over the model's jobs that finished after `since`."""
    ttfts, itls = [], []
    for job in jobs:
        finished = (job.get("timings") or {}).get("finished_at")
        if job.get("model") != model or job.get("status") != "succeeded" or not finished or finished < since:
            continue
        ttft, itl = job_latencies(job)
        if ttft is not None:
            ttfts.append(ttft)
        if itl is not None:
            itls.append(itl)
    return {
        "jobs": float(len(ttfts)),
        "ttft_p50": percentile(ttfts, 50),
        "ttft_p95": percentile(ttfts, 95),
        "itl_p50": percentile(itls, 50),
        "itl_p95": percentile(itls, 95),
    }
