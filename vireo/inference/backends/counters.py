"""Token counters behind `EngineStats` for backends whose engine keeps no per-app totals itself."""

from __future__ import annotations

import threading

from vireo.inference.recent_rate import RecentRate


class TokenCounters:
    """Generated and prompt token totals, prefix-cache hits per app, and a recent tokens/s rate."""

    def __init__(self) -> None:
        self.generated = 0
        self.prompt = 0
        self.cached = 0
        self.prompt_by_app: dict[str, int] = {}
        self.cached_by_app: dict[str, int] = {}
        self._rate = RecentRate()
        self._lock = threading.Lock()

    def add_generated(self, n: int) -> None:
        with self._lock:
            self.generated += n
        self._rate.add(n)

    def add_prompt(self, app: str | None, prompt: int, cached: int = 0) -> None:
        key = app or "-"
        with self._lock:
            self.prompt += prompt
            self.cached += cached
            self.prompt_by_app[key] = self.prompt_by_app.get(key, 0) + prompt
            self.cached_by_app[key] = self.cached_by_app.get(key, 0) + cached

    def tokens_per_s(self) -> float:
        """Generated tokens per second over the last few seconds (0 when idle)."""
        return self._rate.per_s()

    def prefix_hit_rate(self) -> float:
        return self.cached / self.prompt if self.prompt else 0.0

    def prefix_hit_rate_by_app(self) -> dict[str, float]:
        with self._lock:
            return {app: self.cached_by_app[app] / n for app, n in self.prompt_by_app.items() if n}
