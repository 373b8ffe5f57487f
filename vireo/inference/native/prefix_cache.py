"""Prefix caching: full KV blocks named by a hash chain, shared across requests, evicted LRU.

A full block's key is hash(parent key, its token ids), so one key names the whole prefix up to and
including that block. Blocks nobody references stay cached (evictable) until the block manager
needs room; then the least recently released one is evicted first.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field

ROOT_HASH = 0x5EED


def block_hash(parent: int, tokens: tuple[int, ...]) -> int:
    """Key of a full block given its parent's key; equal keys mean equal prefixes."""
    return hash((parent, tokens))


def chain_hashes(token_ids: list[int], block_size: int) -> list[int]:
    """Keys of every full block of `token_ids`, in order."""
    keys, parent = [], ROOT_HASH
    for start in range(0, len(token_ids) - block_size + 1, block_size):
        parent = block_hash(parent, tuple(token_ids[start:start + block_size]))
        keys.append(parent)
    return keys


@dataclass
class HitCounter:
    """Prompt tokens looked up vs found, overall and per app."""

    looked_up: int = 0
    hit: int = 0

    @property
    def rate(self) -> float:
        return self.hit / self.looked_up if self.looked_up else 0.0


@dataclass
class PrefixCache:
    """Maps block keys to block ids and keeps unreferenced cached blocks in LRU order."""

    block_of: dict[int, int] = field(default_factory=dict)  # key -> block id
    tokens_of: dict[int, tuple[int, ...]] = field(default_factory=dict)  # block id -> tokens
    key_of: dict[int, int] = field(default_factory=dict)  # block id -> key
    evictable: OrderedDict[int, None] = field(default_factory=OrderedDict)  # oldest first
    overall: HitCounter = field(default_factory=HitCounter)
    by_app: dict[str, HitCounter] = field(default_factory=lambda: defaultdict(HitCounter))

    def lookup(self, key: int, tokens: tuple[int, ...]) -> int | None:
        """The cached block holding exactly `tokens` under `key`, if any."""
        block = self.block_of.get(key)
        if block is None or self.tokens_of.get(block) != tokens:
            return None
        return block

    def insert(self, key: int, block: int, tokens: tuple[int, ...]) -> None:
        """Name `block` by `key` unless an equal block is already cached (first one wins)."""
        if key in self.block_of or block in self.key_of:
            return
        self.block_of[key], self.key_of[block], self.tokens_of[block] = block, key, tokens

    def is_cached(self, block: int) -> bool:
        return block in self.key_of

    def release(self, block: int) -> None:
        """A cached block lost its last reference: keep it, most recently used last."""
        self.evictable[block] = None

    def revive(self, block: int) -> None:
        """A cached, unreferenced block got a reference again."""
        self.evictable.pop(block, None)

    def evict_oldest(self) -> int | None:
        """Forget the least recently released unreferenced block and return its id."""
        if not self.evictable:
            return None
        block, _ = self.evictable.popitem(last=False)
        self.forget(block)
        return block

    def forget(self, block: int) -> None:
        key = self.key_of.pop(block, None)
        if key is not None and self.block_of.get(key) == block:
            del self.block_of[key]
        self.tokens_of.pop(block, None)
        self.evictable.pop(block, None)

    def record(self, app: str | None, looked_up: int, hit: int) -> None:
        for counter in (self.overall, self.by_app[app or "default"]):
            counter.looked_up += looked_up
            counter.hit += hit

    def hit_rates_by_app(self) -> dict[str, float]:
        return {app: c.rate for app, c in self.by_app.items()}
