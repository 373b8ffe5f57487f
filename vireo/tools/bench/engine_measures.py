"""What the engine benchmark measures of every backend and peer alike: per-request timings summed up
into one level's figures, and peak memory. Free of torch, so a peer that needs none (llama.cpp) is
measured in a process that holds only its own memory."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field


@dataclass
class RequestTiming:
    """What one streamed request looked like from the caller's side."""

    submitted: float
    first: float | None = None
    gaps: list[float] = field(default_factory=list)  # per output token, between deliveries
    tokens: int = 0
    text: str = ""


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def level_summary(timings: list[RequestTiming], wall: float, concurrency: int, new_tokens: int) -> dict:
    """One concurrency level's figures: output tokens/s over the level's wall time, TTFT and
    inter-token latency p50/p95, and whether every request made exactly `new_tokens` tokens."""
    ttft = [t.first - t.submitted for t in timings if t.first is not None]
    gaps = [g for t in timings for g in t.gaps]
    tokens = sum(t.tokens for t in timings)
    return {
        "concurrency": concurrency,
        "requests": len(timings),
        "wall_s": round(wall, 3),
        "output_tokens": tokens,
        "output_tokens_per_s": round(tokens / wall, 3),
        "ttft_p50_s": rounded(percentile(ttft, 0.5)),
        "ttft_p95_s": rounded(percentile(ttft, 0.95)),
        "itl_p50_s": rounded(percentile(gaps, 0.5)),
        "itl_p95_s": rounded(percentile(gaps, 0.95)),
        "all_requests_made_new_tokens": all(t.tokens == new_tokens for t in timings),
    }


def own_peak_rss_mb() -> float:
    """The kernel's high-water mark of this process's own RSS (children not included), in MB: Linux's
    `VmHWM`. Not `getrusage`'s `ru_maxrss`: Linux carries that over `exec` from the process that spawned
    this one (a backend's process started by a bench holding 600 MB reported 600 MB before doing anything)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource  # elsewhere: the best there is (macOS reports bytes, Linux KiB)

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024


def backend_result(
    backend: str, load_before: list[float], startup_s: float, rss_before_mb: float, peak_mb: float, levels: list[dict]
) -> dict:
    """One backend's row of the report: its levels with its start-up and memory. Each backend runs
    in a process of its own, so its RSS is its own. `peak_rss_hwm_mb` is the kernel's exact
    high-water mark of that process; `peak_mb` the process and its children (vLLM's engine core)
    sampled every 0.2 s from before the engine starts, which misses a peak shorter than that;
    `peak_rss_mb` is the larger of the two, each a lower bound of the true peak."""
    hwm = own_peak_rss_mb()
    peak = max(peak_mb, hwm)
    return {
        "backend": backend,
        "load_average_before": load_before,
        "startup_s": round(startup_s, 2),
        "rss_before_mb": round(rss_before_mb),
        "peak_rss_mb": round(peak),
        "peak_rss_added_mb": round(peak - rss_before_mb),
        "peak_rss_sampled_mb": round(peak_mb),
        "peak_rss_hwm_mb": round(hwm),
        "levels": levels,
    }


class PeakMemory:
    """Samples the RSS of this process and its children (vLLM's engine core) in a thread."""

    def __init__(self, interval_s: float = 0.2):
        import psutil

        self._process = psutil.Process()
        self._interval = interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def current_mb(self) -> float:
        total = 0
        for proc in [self._process, *self._process.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except Exception:  # a child that just exited
                pass
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self.current_mb())
            self._stop.wait(self._interval)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
