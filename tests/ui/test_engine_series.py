"""The Engine page's short history and the latency percentiles of recent jobs."""

from __future__ import annotations

import pytest

from vireo.ui.engine_series import add_sample, job_latencies, latency_percentiles, percentile, sample_of, window

STATS = {
    "backend": "native",
    "model": "smollm2-135m",
    "running": 3,
    "waiting": 1,
    "kv_blocks_used": 30,
    "kv_blocks_total": 120,
    "tokens_per_s": 88.5,
    "generated_tokens": 1000,
    "prefix_hit_rate": 0.4,
    "spec_acceptance": 0.7,
}


def test_a_sample_reads_the_stats_and_the_models_queue():
    sample = sample_of(STATS, {"id": "smollm2-135m", "queued": 5}, at=100.0)
    assert (sample.running, sample.waiting, sample.queued, sample.kv_used) == (3, 1, 5, 0.25)
    assert sample_of({"status": "no worker of smollm2-135m has reported yet"}, None, 100.0) is None


def test_the_series_keeps_the_last_minutes_and_a_window_shows_fewer():
    series: list = []
    for second in range(0, 1200, 100):
        series = add_sample(series, sample_of(STATS, None, at=float(second)), keep_s=600)
    assert [s.at for s in series] == [500.0, 600.0, 700.0, 800.0, 900.0, 1000.0, 1100.0]
    rows = window(series, 250, now=1100.0)
    assert [r["at"] for r in rows] == [900.0, 1000.0, 1100.0] and rows[0]["tokens_per_s"] == 88.5


def test_percentiles_interpolate():
    assert percentile([], 50) is None
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == pytest.approx(4.8)


def job(model: str, finished: float, first: float, tokens: int, status: str = "succeeded") -> dict:
    timings = {"queued_at": 0.0, "started_at": 1.0, "first_token_at": first, "finished_at": finished}
    return {"model": model, "status": status, "timings": timings, "usage": {"completion_tokens": tokens}}


def test_latency_of_the_models_recent_successful_jobs():
    assert job_latencies(job("m", 11.0, 1.5, 21)) == (0.5, 0.475)
    jobs = [
        job("m", 100.0, 1.2, 11),
        job("m", 100.0, 1.4, 1),  # one token: no time between tokens
        job("m", 10.0, 5.0, 11),  # finished before the window
        job("other", 100.0, 9.0, 11),
        job("m", 100.0, 9.0, 11, status="cancelled"),
    ]
    got = latency_percentiles(jobs, "m", since=50.0)
    assert got["jobs"] == 2 and got["ttft_p50"] == pytest.approx(0.3)
    assert got["itl_p50"] == pytest.approx((100.0 - 1.2) / 10)
