"""Paged KV memory: fixed-size blocks with reference counts, allocated as sequences grow.

Full blocks are named in the prefix cache by their hash chain when computed, a new sequence
starts from the longest cached run of its prompt's blocks, and a shared block is copied before it
is written (copy-on-write). Pending copies are drained by the model runner before its forward.
With caching off the cache is a `NoPrefixCache`: nothing is found or named.
"""

from __future__ import annotations

from vireo.inference.native.scheduling.prefix_cache import BasePrefixCache, MatchResult, NoPrefixCache
from vireo.inference.native.scheduling.sequence import Sequence

NO_PREFIX_CACHE = NoPrefixCache()


class OutOfBlocks(RuntimeError):
    """No free or evictable block is left."""


class BlockManager:
    """Owns block ids 0..num_blocks-1; sequences hold them through their block tables."""

    def __init__(self, num_blocks: int, block_size: int, prefix_cache: BasePrefixCache = NO_PREFIX_CACHE):
        self.num_blocks, self.block_size = num_blocks, block_size
        self.ref_counts = [0] * num_blocks
        # free and holding nothing reusable, a stack: the block freed last is taken first, so a step reuses
        # memory it has already touched (on the CPU a block's pages count only once written) and the
        # never-used ones, taken in id order from the bottom, are reached only when the others are in use
        self.clean: list[int] = list(range(num_blocks - 1, -1, -1))
        self.cache = prefix_cache
        self.pending_copies: list[tuple[int, int]] = []  # (src, dst) for copy-on-write
        self.high_water = 0  # blocks [0, high_water) have been handed out at least once

    # --- capacity ---------------------------------------------------------------------------
    @property
    def num_free(self) -> int:
        """Blocks an allocation can take: clean ones plus evictable cached ones."""
        return len(self.clean) + self.cache.num_evictable

    @property
    def num_used(self) -> int:
        return self.num_blocks - self.num_free

    def blocks_needed(self, seq: Sequence, num_tokens: int) -> int:
        """More blocks `seq` needs so that its table covers `num_tokens` positions."""
        return max(0, -(-num_tokens // self.block_size) - len(seq.block_table))

    # --- allocation -------------------------------------------------------------------------
    def _take(self) -> int:
        block: int | None
        if self.clean:
            block = self.clean.pop()
        elif (block := self.cache.evict_oldest()) is None:
            raise OutOfBlocks("no free KV block")
        self.ref_counts[block] = 1
        self.high_water = max(self.high_water, block + 1)
        return block

    def _release(self, block: int) -> None:
        self.ref_counts[block] -= 1
        assert self.ref_counts[block] >= 0, f"block {block} released twice"
        if self.ref_counts[block] == 0:
            if self.cache.is_cached(block):
                self.cache.release(block)
            else:
                self.clean.append(block)

    def allocate(self, seq: Sequence, num_tokens: int) -> bool:
        """Grow `seq`'s table to cover `num_tokens` positions; False (and no change) if it can't."""
        need = self.blocks_needed(seq, num_tokens)
        if need > self.num_free:
            return False
        seq.block_table.extend(self._take() for _ in range(need))
        return True

    def free(self, seq: Sequence) -> None:
        """Drop all of `seq`'s blocks; tail blocks first so prefix heads are evicted last."""
        for block in reversed(seq.block_table):
            self._release(block)
        seq.block_table = []
        seq.num_named_blocks = 0

    def trim(self, seq: Sequence, num_tokens: int) -> None:
        """Release blocks past what `num_tokens` positions need (after rejected speculation)."""
        keep = -(-num_tokens // self.block_size)
        while len(seq.block_table) > keep:
            self._release(seq.block_table.pop())

    # --- prefix caching ---------------------------------------------------------------------
    def _cache_for(self, seq: Sequence) -> BasePrefixCache:
        return self.cache if seq.use_prefix_cache else NO_PREFIX_CACHE

    def _match(self, seq: Sequence) -> MatchResult:
        return self._cache_for(seq).match(seq.block_keys(self.block_size), seq.token_ids, self.block_size)

    def cached_prefix_tokens(self, seq: Sequence) -> int:
        """How many prompt tokens a lookup would find now (no side effects)."""
        return self._match(seq).num_tokens(self.block_size)

    def match_prefix(self, seq: Sequence) -> int:
        """Start a new `seq` from its longest cached prefix; returns tokens reused."""
        assert not seq.block_table, "prefix lookup is for sequences without blocks"
        match = self._match(seq)
        for block in match.blocks:
            if self.ref_counts[block] == 0:
                self.cache.revive(block)
            self.ref_counts[block] += 1
        seq.block_table = list(match.blocks)
        seq.num_named_blocks = len(match.blocks)
        if not match.blocks:
            return 0
        # The last prompt token must run through the model to give logits for the first sample.
        return min(match.num_tokens(self.block_size), len(seq) - 1)

    def record_admission(self, seq: Sequence) -> None:
        """Count an admitted sequence's prompt tokens and cache hits for the hit-rate stats."""
        self._cache_for(seq).record(seq.app, seq.num_prompt_tokens, seq.num_cached_tokens)

    def prepare_write(self, seq: Sequence, start: int, end: int) -> None:
        """Copy-on-write: give `seq` private copies of shared blocks that positions [start, end) hit."""
        for index in range(start // self.block_size, -(-end // self.block_size)):
            block = seq.block_table[index]
            if self.ref_counts[block] > 1:
                copy = self._take()
                self.pending_copies.append((block, copy))
                self._release(block)
                seq.block_table[index] = copy

    def commit(self, seq: Sequence) -> None:
        """Name `seq`'s newly completed full blocks in the prefix cache."""
        full = min(seq.num_computed_tokens, len(seq)) // self.block_size
        if full <= seq.num_named_blocks:
            return
        cache, size = self._cache_for(seq), self.block_size
        keys = seq.block_keys(size)
        for index in range(seq.num_named_blocks, full):
            cache.insert(keys[index], seq.block_table[index], tuple(seq.token_ids[index * size : (index + 1) * size]))
        seq.num_named_blocks = full

    def take_pending_copies(self) -> list[tuple[int, int]]:
        copies, self.pending_copies = self.pending_copies, []
        return copies
