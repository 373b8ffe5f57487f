"""The engine as the worker last reported it: load, KV cache, speed, prefix cache and speculation."""

from __future__ import annotations

import time

import streamlit as st

from vireo.ui import session

REFRESH_S = 2.0


def _percent(value) -> str:
    return f"{100 * float(value):.1f} %" if value is not None else "—"


def show_stats(stats: dict) -> None:
    """The numbers of one `EngineStats` snapshot."""
    age = f" · reported {time.time() - stats['updated_at']:.0f} s ago" if stats.get("updated_at") else ""
    st.caption(f"backend `{stats.get('backend', '?')}` · model `{stats.get('model', '?')}`{age}")
    row = st.columns(4)
    row[0].metric("Running", stats.get("running", 0))
    row[1].metric("Waiting", stats.get("waiting", 0))
    row[2].metric("Tokens/s", f"{float(stats.get('tokens_per_s', 0)):.1f}")
    row[3].metric("Generated tokens", stats.get("generated_tokens", 0))
    used, total = stats.get("kv_blocks_used", 0), stats.get("kv_blocks_total", 0)
    row = st.columns(4)
    row[0].metric("KV blocks used", f"{used} / {total}" if total else str(used))
    row[1].metric("KV blocks evictable", stats.get("kv_blocks_evictable", 0))
    row[2].metric("Prefix-cache hit rate", _percent(stats.get("prefix_hit_rate")))
    row[3].metric(
        "Speculative acceptance",
        _percent(stats.get("spec_acceptance")),
        help=f"{stats.get('spec_accepted', 0)} accepted of {stats.get('spec_proposed', 0)} proposed",
    )
    if total:
        st.progress(min(used / total, 1.0), text=f"KV cache {_percent(used / total)} full")
    by_app = stats.get("prefix_hit_rate_by_app") or {}
    if by_app:
        st.markdown("**Prefix-cache hit rate by app**")
        st.dataframe(
            [{"app": app, "hit rate": _percent(rate)} for app, rate in sorted(by_app.items())], hide_index=True
        )
    with st.expander("Raw stats (JSON)"):
        st.json(stats)


@st.fragment(run_every=REFRESH_S)
def live_stats() -> None:
    stats = session.call(lambda: session.client().engine_stats(), "engine statistics")
    if stats is None:
        return
    if "running" not in stats:
        st.info(stats.get("status") or "No worker has reported engine statistics yet.")
        return
    show_stats(stats)


def render() -> None:
    st.title("Engine")
    st.caption(f"Refreshes every {REFRESH_S:.0f} s.")
    live_stats()
