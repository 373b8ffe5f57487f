"""What the engine reports: token counts, recent tokens per second and a snapshot of its parts."""

from __future__ import annotations

from vireo.inference.api import EngineStats
from vireo.inference.native.scheduling.block_manager import BlockManager
from vireo.inference.native.scheduling.scheduler import Scheduler
from vireo.inference.native.scheduling.sequence import Sequence
from vireo.inference.native.spec_decode.speculative import Speculator
from vireo.inference.recent_rate import RecentRate


class EngineCounters:
    """Generated, prompt and prefix-cached tokens, and when tokens were generated."""

    def __init__(self) -> None:
        self.generated = self.prompt = self.cached = 0
        self.rate = RecentRate()  # generated tokens per second, recently

    def count_generated(self, n: int) -> None:
        self.generated += n
        self.rate.add(n)

    def count_finished(self, seq: Sequence) -> None:
        self.prompt += seq.num_prompt_tokens
        self.cached += seq.num_cached_tokens

    def tokens_per_s(self) -> float:
        return self.rate.per_s()


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
