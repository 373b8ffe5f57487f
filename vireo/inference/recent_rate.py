"""Tokens per second over a sliding window, at O(1) per sample and per read.

Engine stats are read often: a worker's engine in a process of its own sends them with every batch of
events that finishes a request (dozens a second at 64 streams), on the thread that shares the GIL
with the engine's step loop. A rate recomputed from the whole history (thousands of per-step entries)
cost that thread a fifth of its time there; this one keeps a running sum and drops samples as they
age out.
"""

from __future__ import annotations

import threading
import time
from collections import deque

WINDOW_S = 10.0


class RecentRate:
    """Amounts added over the last `window_s` seconds, per second (0 when none). Thread-safe: an engine
    adds on its step thread and is read from its event loop."""

    def __init__(self, window_s: float = WINDOW_S):
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()
        self._sum = 0
        self._lock = threading.Lock()

    def add(self, n: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._samples.append((now, n))
            self._sum += n
            self._expire(now)

    def per_s(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._expire(now)
            if not self._samples:
                return 0.0
            return self._sum / max(now - self._samples[0][0], 1e-3)

    def _expire(self, now: float) -> None:
        samples = self._samples
        while samples and now - samples[0][0] > self.window_s:
            self._sum -= samples.popleft()[1]
