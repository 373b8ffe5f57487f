"""Prometheus metrics of the API process: its own counters, engine gauges refreshed from the worker's
stats; what the workers record lives in Redis (job_metrics.py, fleet.py) and is added at each scrape."""

from __future__ import annotations

from prometheus_client import Counter, Gauge
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

JOBS_SUBMITTED = Counter("vireo_jobs_submitted_total", "Jobs accepted by the API", ["app"])
REQUESTS_LIMITED = Counter(
    "vireo_requests_limited_total",
    "Requests refused with 429, by limit (rpm, concurrent, tokens) and tenant",
    ["limit", "tenant"],
)
ENGINE_GAUGES = {
    name: Gauge(f"vireo_engine_{name}", help_text, ["model"])
    for name, help_text in {
        "running": "Requests running in the engine",
        "waiting": "Requests waiting for the engine",
        "kv_blocks_used": "KV-cache blocks in use",
        "kv_blocks_total": "KV-cache blocks in all",
        "kv_blocks_evictable": "Cached KV blocks that no request holds (evictable)",
        "tokens_per_s": "Generated tokens per second (recent)",
        "cached_tokens": "Prompt tokens served from the prefix cache",
        "prefix_hit_rate": "Share of prompt tokens served from the prefix cache",
        "spec_acceptance": "Share of speculated tokens accepted",
    }.items()
}
PREFIX_HIT_RATE_BY_APP = Gauge("vireo_engine_prefix_hit_rate_by_app", "Prefix-cache hit rate per app", ["model", "app"])


def refresh_engine_gauges(model: str, stats: dict | None) -> None:
    """The gauges of one served model from the engine numbers its workers published (none: left as they were)."""
    if not stats:
        return
    for name, gauge in ENGINE_GAUGES.items():
        value = stats.get(name)
        if isinstance(value, (int, float)):
            gauge.labels(model=model).set(value)
    for app, rate in (stats.get("prefix_hit_rate_by_app") or {}).items():
        PREFIX_HIT_RATE_BY_APP.labels(model=model, app=app).set(rate)


class Snapshot(Collector):
    """Metric families read for one scrape, as a collector a registry can render."""

    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self):
        return iter(self.families)
