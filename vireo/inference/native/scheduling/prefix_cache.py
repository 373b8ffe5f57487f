"""Prefix caching: full KV blocks named by a hash chain, shared across requests, evicted LRU.

A full block's key is hash(parent key, its token ids), so one key names the whole prefix up to and
including that block. Blocks nobody references stay cached (evictable) until the block manager
needs room; then the least recently released one is evicted first. The block manager talks to a
`BasePrefixCache` (SGLang's shape: a typed `MatchResult`, and a `NoPrefixCache` when caching is
off), so it never asks whether there is a cache.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field

ROOT_HASH = 0x5EED


def block_hash(parent: int, tokens: tuple[int, ...]) -> int:
    """Key of a full block given its parent's key; equal keys mean equal prefixes."""
    return hash((parent, tokens))


@dataclass(frozen=True)
class MatchResult:
    """The longest cached run of a sequence's leading full blocks: their block ids, in order."""

    blocks: list[int]

    def num_tokens(self, block_size: int) -> int:
        return len(self.blocks) * block_size


@dataclass
class HitCounter:
    """Prompt tokens looked up vs found, overall and per app."""

    looked_up: int = 0
    hit: int = 0

    @property
    def rate(self) -> float:
        return self.hit / self.looked_up if self.looked_up else 0.0


class BasePrefixCache(ABC):
    """What the block manager needs of a prefix cache."""

    @abstractmethod
    def match(self, keys: list[int], token_ids: list[int], block_size: int) -> MatchResult:
        """Cached blocks holding the leading full blocks of `token_ids`, whose chained keys
        (`Sequence.block_keys`) are `keys`."""

    @abstractmethod
    def insert(self, key: int, block: int, tokens: tuple[int, ...]) -> None:
        """Name a full block by its key (first one wins)."""

    @abstractmethod
    def is_cached(self, block: int) -> bool: ...

    @abstractmethod
    def release(self, block: int) -> None:
        """A cached block lost its last reference: keep it, evictable, most recently used last."""

    @abstractmethod
    def revive(self, block: int) -> None:
        """A cached, unreferenced block got a reference again."""

    @abstractmethod
    def evict_oldest(self) -> int | None:
        """Forget the least recently released unreferenced block and return its id."""

    @property
    @abstractmethod
    def num_evictable(self) -> int: ...

    @abstractmethod
    def record(self, app: str | None, looked_up: int, hit: int) -> None:
        """Count an admitted prompt's tokens and cache hits."""

    @property
    @abstractmethod
    def hit_rate(self) -> float: ...

    @abstractmethod
    def hit_rates_by_app(self) -> dict[str, float]: ...


class NoPrefixCache(BasePrefixCache):
    """Prefix caching off: nothing is found, named or kept."""

    def match(self, keys: list[int], token_ids: list[int], block_size: int) -> MatchResult:
        return MatchResult([])

    def insert(self, key: int, block: int, tokens: tuple[int, ...]) -> None:
        pass

    def is_cached(self, block: int) -> bool:
        return False

    def release(self, block: int) -> None:
        raise AssertionError("no block is cached without a prefix cache")

    def revive(self, block: int) -> None:
        pass

    def evict_oldest(self) -> int | None:
        return None

    @property
    def num_evictable(self) -> int:
        return 0

    def record(self, app: str | None, looked_up: int, hit: int) -> None:
        pass

    @property
    def hit_rate(self) -> float:
        return 0.0

    def hit_rates_by_app(self) -> dict[str, float]:
        return {}


@dataclass
class PrefixCache(BasePrefixCache):
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

    def match(self, keys: list[int], token_ids: list[int], block_size: int) -> MatchResult:
        blocks = []
        for i, key in enumerate(keys):
            block = self.lookup(key, tuple(token_ids[i * block_size : (i + 1) * block_size]))
            if block is None:
                break
            blocks.append(block)
        return MatchResult(blocks)

    def insert(self, key: int, block: int, tokens: tuple[int, ...]) -> None:
        if key in self.block_of or block in self.key_of:
            return
        self.block_of[key], self.key_of[block], self.tokens_of[block] = block, key, tokens

    def is_cached(self, block: int) -> bool:
        return block in self.key_of

    def release(self, block: int) -> None:
        self.evictable[block] = None

    def revive(self, block: int) -> None:
        self.evictable.pop(block, None)

    def evict_oldest(self) -> int | None:
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

    @property
    def num_evictable(self) -> int:
        return len(self.evictable)

    def record(self, app: str | None, looked_up: int, hit: int) -> None:
        for counter in (self.overall, self.by_app[app or "default"]):
            counter.looked_up += looked_up
            counter.hit += hit

    @property
    def hit_rate(self) -> float:
        return self.overall.rate

    def hit_rates_by_app(self) -> dict[str, float]:
        return {app: c.rate for app, c in self.by_app.items()}
