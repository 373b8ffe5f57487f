"""The engine live: per served model, charts over the last minutes of tokens/s, running/waiting/queued
jobs, KV-cache use, prefix-cache hits and speculative acceptance, and the latency of recent jobs; kept as a
short time series in the browser session, one sample every few seconds."""

from __future__ import annotations

import datetime as dt
import time

import streamlit as st

from vireo.ui import session
from vireo.ui.charts import label_bars, time_chart
from vireo.ui.client import ApiError
from vireo.ui.engine_series import add_sample, latency_percentiles, sample_of, window

REFRESH_S = 2.0
WINDOWS = {60: "1 minute", 300: "5 minutes", 900: "15 minutes"}
LATENCY_WINDOW_S = 300  # latency percentiles over the jobs that finished in the last 5 minutes
JOBS_READ = 50


def _percent(value) -> str:
    return f"{100 * float(value):.1f} %" if value is not None else "—"


def _ms(value) -> str:
    return f"{1000 * value:.0f} ms" if value is not None else "—"


def _series(model: str) -> list:
    return st.session_state.setdefault("engine.series", {}).setdefault(model, [])


def _latency_series(model: str) -> list:
    return st.session_state.setdefault("engine.latency", {}).setdefault(model, [])


def _collect(models: list[dict], now: float) -> dict[str, dict]:
    """One sample per served model; returns each model's latest stats reply."""
    latest: dict[str, dict] = {}
    try:
        jobs = session.client().jobs(JOBS_READ).get("jobs", [])
    except ApiError:
        jobs = []
    for entry in models:
        name = entry["id"]
        try:
            stats = session.client().engine_stats(name)
        except ApiError as exc:
            session.show_error(exc, f"engine statistics of {name}")
            continue
        latest[name] = stats
        sample = sample_of(stats, entry, now)
        if sample is not None:
            st.session_state["engine.series"][name] = add_sample(_series(name), sample)
        latency = latency_percentiles(jobs, name, now - LATENCY_WINDOW_S)
        if latency["jobs"]:
            points = [p for p in _latency_series(name) if now - p["at"] <= 900]
            st.session_state["engine.latency"][name] = [*points, {"at": now, **latency}]
    return latest


def _charts(model: str, stats: dict, seconds: int, now: float) -> None:
    age = f" · reported {max(0.0, now - stats['updated_at']):.0f} s ago" if stats.get("updated_at") else ""
    st.caption(f"backend `{stats.get('backend', '?')}` · model `{stats.get('model', '?')}`{age}")
    rows = window(_series(model), seconds, now)
    last = rows[-1] if rows else {}
    cells = st.columns(5)
    cells[0].metric("Tokens/s", f"{float(stats.get('tokens_per_s', 0)):.1f}")
    cells[1].metric("Running", stats.get("running", 0))
    cells[2].metric("Waiting", stats.get("waiting", 0))
    cells[3].metric("KV-cache use", _percent(last.get("kv_used")))
    cells[4].metric(
        "Prefix-cache hit rate",
        _percent(stats.get("prefix_hit_rate")),
        help=f"Speculative acceptance {_percent(stats.get('spec_acceptance'))}: "
        f"{stats.get('spec_accepted', 0)} accepted of {stats.get('spec_proposed', 0)} proposed",
    )
    if len(rows) < 2:
        st.info("Collecting samples: the charts draw once there are two.")
        return
    top = st.columns(2)
    with top[0]:
        st.markdown("**Tokens per second**")
        time_chart(rows, ["tokens_per_s"], "tokens/s")
    with top[1]:
        st.markdown("**Jobs: running, waiting in the engine, queued for a worker**")
        time_chart(rows, ["running", "waiting", "queued"], "jobs", value_format="d")
    bottom = st.columns(2)
    with bottom[0]:
        st.markdown("**KV cache in use · prefix-cache hits · speculative acceptance**")
        shares = [
            {
                "time": r["time"],
                "KV cache in use": r["kv_used"],
                "prefix hits": r["prefix_hit_rate"],
                "spec. accepted": r["spec_acceptance"],
            }
            for r in rows
        ]
        time_chart(shares, ["KV cache in use", "prefix hits", "spec. accepted"], "share", share=True)
    with bottom[1]:
        _latency_chart(model, seconds, now)
    by_app = stats.get("prefix_hit_rate_by_app") or {}
    if by_app:
        st.markdown("**Prefix-cache hit rate by app**")
        label_bars(  # in percent, as the hit-rate metric above shows it
            [{"app": app, "hit rate (%)": round(100 * rate, 1)} for app, rate in sorted(by_app.items())],
            "app",
            "hit rate (%)",
            "Prefix-cache hit rate of each app, in percent",
        )


def _latency_chart(model: str, seconds: int, now: float) -> None:
    st.markdown("**Latency of your jobs (p50 / p95 over the last 5 minutes)**")
    points = [p for p in _latency_series(model) if now - p["at"] <= seconds]
    if not points:
        st.caption("No finished job of yours on this model in the last 5 minutes.")
        return
    last = points[-1]
    st.caption(
        f"{int(last['jobs'])} jobs · time to first token (TTFT) {_ms(last['ttft_p50'])} / {_ms(last['ttft_p95'])}"
        f" · between tokens (ITL) {_ms(last['itl_p50'])} / {_ms(last['itl_p95'])}"
    )
    rows = [
        {
            "time": dt.datetime.fromtimestamp(p["at"]),
            **{
                label: 1000 * p[key]
                for key, label in (
                    ("ttft_p50", "TTFT p50"),
                    ("ttft_p95", "TTFT p95"),
                    ("itl_p50", "ITL p50"),
                    ("itl_p95", "ITL p95"),
                )
                if p[key] is not None
            },
        }
        for p in points
    ]
    columns = [c for c in ("TTFT p50", "TTFT p95", "ITL p50", "ITL p95") if c in rows[-1]]
    time_chart(rows, columns, "milliseconds", value_format=",.0f")


@st.fragment(run_every=REFRESH_S)
def live() -> None:
    models = session.models()
    if not models:
        session.call(lambda: session.client().models(), "listing the served models")
        return
    now = time.time()
    latest = _collect(models, now)
    seconds = st.session_state.get("engine.window", 300)
    names = [m["id"] for m in models]
    views = st.tabs(names) if len(names) > 1 else [st.container()]
    for name, view in zip(names, views):
        with view:
            stats = latest.get(name)
            if stats is None:
                continue
            if "running" not in stats:
                st.info(stats.get("status") or f"No worker of {name} has reported engine statistics yet.")
                continue
            _charts(name, stats, seconds, now)
            with st.expander("Raw stats (JSON)"):
                st.json(stats)


def render() -> None:
    st.title("Engine")
    cols = st.columns([3, 2])
    cols[0].caption(f"Live: a sample every {REFRESH_S:.0f} s while this page is open, kept in this browser tab.")
    cols[1].segmented_control(
        "Show the last",
        list(WINDOWS),
        format_func=lambda s: WINDOWS[s],
        default=300,
        required=True,
        key="engine.window",
    )
    live()
