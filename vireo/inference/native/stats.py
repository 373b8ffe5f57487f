"""What the engine reports: token counts, recent tokens per second and a snapshot of its parts."""

from __future__ import annotations

import bisect

from vireo.inference.api import EngineStats
from vireo.inference.native.scheduling.block_manager import BlockManager
from vireo.inference.native.scheduling.scheduler import Scheduler
from vireo.inference.native.scheduling.sequence import Sequence
from vireo.inference.native.spec_decode.speculative import Speculator
from vireo.inference.recent_rate import RecentRate

# What a step was: a pure decode step run ahead of its predecessor's tokens (overlap.py, CUDA graphs where
# captured), a decode step run in turn (speculative verifications included), a step of prompt chunks only,
# or prompt chunks beside decodes (run eagerly on CUDA: no graph).
STEP_KINDS = ("decode_overlapped", "decode", "prefill", "mixed")
# Upper edges (ms) of the step-time histogram's buckets, each 20 % wider than the one before, 0.1 ms to ~4.7 s
# (one more bucket past the last): a step time's median and spread between two snapshots, not only its mean (a
# mean over eight prefill steps once read as a gap between two processes that was the spread of one)
STEP_MS_EDGES = tuple(round(0.1 * 1.2**k, 4) for k in range(60))


class EngineCounters:
    """Generated, prompt and prefix-cached tokens, when tokens were generated, and steps by kind with the
    step thread's seconds in each (what a throughput figure is made of)."""

    def __init__(self) -> None:
        self.generated = self.prompt = self.cached = 0
        self.rate = RecentRate()  # generated tokens per second, recently
        # every key there from the start: readers on other threads copy these while the step thread adds
        self.steps = dict.fromkeys(STEP_KINDS, 0)
        self.step_seconds = dict.fromkeys(STEP_KINDS, 0.0)
        self.step_histogram = {kind: [0] * (len(STEP_MS_EDGES) + 1) for kind in STEP_KINDS}

    def count_step(self, kind: str, seconds: float) -> None:
        self.steps[kind] += 1
        self.step_seconds[kind] += seconds
        self.step_histogram[kind][bisect.bisect_left(STEP_MS_EDGES, 1000 * seconds)] += 1

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
        steps_by_kind=dict(counters.steps),
        step_seconds_by_kind={kind: round(seconds, 4) for kind, seconds in counters.step_seconds.items()},
        step_ms_histogram_by_kind={kind: list(counts) for kind, counts in counters.step_histogram.items()},
    )
