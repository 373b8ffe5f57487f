"""What the engine reports: token counts, recent tokens per second and a snapshot of its parts."""

from __future__ import annotations

import time
from collections import deque

from vireo.inference.api import EngineStats
from vireo.inference.native.scheduling.block_manager import BlockManager
from vireo.inference.native.scheduling.scheduler import Scheduler
from vireo.inference.native.scheduling.sequence import Sequence
from vireo.inference.native.spec_decode.speculative import Speculator

RECENT_LIMIT = 4096  # (time, tokens) entries kept for tokens/s


class EngineCounters:
    """Generated, prompt and prefix-cached tokens, and when tokens were generated."""

    def __init__(self) -> None:
        self.generated = self.prompt = self.cached = 0
        self.recent: deque[tuple[float, int]] = deque()  # (time, tokens) for tokens/s

    def count_generated(self, n: int) -> None:
        self.generated += n
        self.recent.append((time.monotonic(), n))
        while len(self.recent) > RECENT_LIMIT:
            self.recent.popleft()

    def count_finished(self, seq: Sequence) -> None:
        self.prompt += seq.num_prompt_tokens
        self.cached += seq.num_cached_tokens

    def tokens_per_s(self, window: float = 10.0) -> float:
        now = time.monotonic()
        recent = [(t, n) for t, n in list(self.recent) if now - t <= window]
        if not recent:
            return 0.0
        span = max(now - recent[0][0], 1e-3)
        return sum(n for _, n in recent) / span


def engine_stats(
    backend: str,
    model: str,
    scheduler: Scheduler,
    blocks: BlockManager,
    speculator: Speculator,
    counters: EngineCounters,
) -> EngineStats:
    cache = blocks.cache
    proposed, accepted = speculator.proposed, speculator.accepted
    return EngineStats(
        backend=backend,
        model=model,
        running=len(scheduler.running),
        waiting=len(scheduler.waiting),
        kv_blocks_used=blocks.num_used,
        kv_blocks_total=blocks.num_blocks,
        kv_blocks_evictable=cache.num_evictable,
        tokens_per_s=counters.tokens_per_s(),
        generated_tokens=counters.generated,
        prompt_tokens=counters.prompt,
        cached_tokens=counters.cached,
        prefix_hit_rate=cache.hit_rate,
        prefix_hit_rate_by_app=cache.hit_rates_by_app(),
        spec_proposed=proposed,
        spec_accepted=accepted,
        spec_acceptance=accepted / proposed if proposed else 0.0,
    )
