"""Paged KV memory: fixed-size blocks with reference counts, allocated as sequences grow.

With a `PrefixCache`, full blocks are named by their hash chain when computed, a new sequence
starts from the longest cached run of its prompt's blocks, and a shared block is copied before it
is written (copy-on-write). Pending copies are drained by the model runner before its forward.
"""

from __future__ import annotations

from collections import deque

from vireo.inference.native.prefix_cache import PrefixCache, block_hash, chain_hashes, ROOT_HASH
from vireo.inference.native.sequence import Sequence


class OutOfBlocks(RuntimeError):
    """No free or evictable block is left."""


class BlockManager:
    """Owns block ids 0..num_blocks-1; sequences hold them through their block tables."""

    def __init__(self, num_blocks: int, block_size: int, prefix_cache: PrefixCache | None = None):
        self.num_blocks, self.block_size = num_blocks, block_size
        self.ref_counts = [0] * num_blocks
        self.clean: deque[int] = deque(range(num_blocks))  # free and holding nothing reusable
        self.cache = prefix_cache
        self.pending_copies: list[tuple[int, int]] = []  # (src, dst) for copy-on-write
        self.high_water = 0  # blocks [0, high_water) have been handed out at least once

    # --- capacity ---------------------------------------------------------------------------
    @property
    def num_free(self) -> int:
        """Blocks an allocation can take: clean ones plus evictable cached ones."""
        return len(self.clean) + (len(self.cache.evictable) if self.cache else 0)

    @property
    def num_used(self) -> int:
        return self.num_blocks - self.num_free

    def blocks_needed(self, seq: Sequence, num_tokens: int) -> int:
        """More blocks `seq` needs so that its table covers `num_tokens` positions."""
        return max(0, -(-num_tokens // self.block_size) - len(seq.block_table))

    # --- allocation -------------------------------------------------------------------------
    def _take(self) -> int:
        if self.clean:
            block = self.clean.popleft()
        elif self.cache is not None and (block := self.cache.evict_oldest()) is not None:
            pass
        else:
            raise OutOfBlocks("no free KV block")
        self.ref_counts[block] = 1
        self.high_water = max(self.high_water, block + 1)
        return block

    def _release(self, block: int) -> None:
        self.ref_counts[block] -= 1
        assert self.ref_counts[block] >= 0, f"block {block} released twice"
        if self.ref_counts[block] == 0:
            if self.cache is not None and self.cache.is_cached(block):
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
        seq.block_hashes = []

    def trim(self, seq: Sequence, num_tokens: int) -> None:
        """Release blocks past what `num_tokens` positions need (after rejected speculation)."""
        keep = -(-num_tokens // self.block_size)
        while len(seq.block_table) > keep:
            self._release(seq.block_table.pop())

    # --- prefix caching ---------------------------------------------------------------------
    def cached_prefix_tokens(self, seq: Sequence) -> int:
        """How many prompt tokens a lookup would find now (no side effects)."""
        if self.cache is None or not seq.use_prefix_cache:
            return 0
        hits = 0
        for i, key in enumerate(self._prompt_keys(seq)):
            tokens = tuple(seq.token_ids[i * self.block_size:(i + 1) * self.block_size])
            if self.cache.lookup(key, tokens) is None:
                break
            hits += 1
        return hits * self.block_size

    def _prompt_keys(self, seq: Sequence) -> list[int]:
        known = getattr(seq, "_keys", None)
        if known is None or known[0] != len(seq):  # tokens grow after a preemption
            known = seq._keys = (len(seq), chain_hashes(seq.token_ids, self.block_size))
        return known[1]

    def match_prefix(self, seq: Sequence) -> int:
        """Start a new `seq` from its longest cached prefix; returns tokens reused."""
        assert not seq.block_table, "prefix lookup is for sequences without blocks"
        seq.block_hashes = []
        if self.cache is None or not seq.use_prefix_cache:
            return 0
        for i, key in enumerate(self._prompt_keys(seq)):
            tokens = tuple(seq.token_ids[i * self.block_size:(i + 1) * self.block_size])
            block = self.cache.lookup(key, tokens)
            if block is None:
                break
            if self.ref_counts[block] == 0:
                self.cache.revive(block)
            self.ref_counts[block] += 1
            seq.block_table.append(block)
            seq.block_hashes.append(key)
        hit = len(seq.block_table) * self.block_size
        # The last prompt token must run through the model to give logits for the first sample.
        return min(hit, len(seq) - 1)

    def record_admission(self, seq: Sequence) -> None:
        """Count an admitted sequence's prompt tokens and cache hits for the hit-rate stats."""
        if self.cache is not None and seq.use_prefix_cache:
            self.cache.record(seq.app, seq.num_prompt_tokens, seq.num_cached_tokens)

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
        if self.cache is None or not seq.use_prefix_cache:
            return
        full = min(seq.num_computed_tokens, len(seq)) // self.block_size
        parent = seq.block_hashes[-1] if seq.block_hashes else ROOT_HASH
        for index in range(len(seq.block_hashes), full):
            tokens = tuple(seq.token_ids[index * self.block_size:(index + 1) * self.block_size])
            parent = block_hash(parent, tokens)
            seq.block_hashes.append(parent)
            self.cache.insert(parent, seq.block_table[index], tokens)

    def take_pending_copies(self) -> list[tuple[int, int]]:
        copies, self.pending_copies = self.pending_copies, []
        return copies
