"""One request's state inside the native engine: tokens, KV block table, status.

The scheduler owns this state: it admits, preempts and finishes a sequence and, once per step,
appends what was sampled (`Scheduler.update`); the block manager fills its block table. Nobody
else writes it; everyone may read it.
"""

from __future__ import annotations

import enum
import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from vireo.inference.api import FinishReason, SamplingParams
from vireo.inference.native.scheduling.prefix_cache import ROOT_HASH, block_hash

if TYPE_CHECKING:
    from vireo.inference.native.sampling.constraints import GrammarMatcher

_ids = itertools.count()


class SequenceStatus(enum.Enum):
    WAITING = "waiting"  # not yet (or no longer, after preemption) holding KV blocks
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(eq=False)
class Sequence:
    """Prompt + generated token ids and where their KV lives (`block_table`)."""

    request_id: str
    token_ids: list[int]
    sampling: SamplingParams
    priority: int = 0
    app: str | None = None
    use_prefix_cache: bool = True
    speculation: str = "off"  # "off" | "prompt_lookup" | "draft"
    grammar: "GrammarMatcher | None" = None  # set when the request carries a Constraint
    seq_id: int = field(default_factory=lambda: next(_ids))
    arrival: float = field(default_factory=time.monotonic)
    received_at: float = field(default_factory=time.time)  # wall clock, for the request's `RequestTimes`
    scheduled_at: float | None = None  # wall clock of the first step that ran any of its prompt
    status: SequenceStatus = SequenceStatus.WAITING
    block_table: list[int] = field(default_factory=list)  # written by the block manager
    num_named_blocks: int = 0  # leading blocks of the table named in the prefix cache
    num_computed_tokens: int = 0  # tokens whose KV is in the cache
    num_cached_tokens: int = 0  # of the prompt, found in the prefix cache at admission
    finish_reason: FinishReason | None = None
    generator: torch.Generator | None = None
    _block_keys: list[int] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self.num_prompt_tokens = len(self.token_ids)
        if self.sampling.seed is not None:
            self.generator = torch.Generator().manual_seed(self.sampling.seed)

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def num_completion_tokens(self) -> int:
        return len(self.token_ids) - self.num_prompt_tokens

    @property
    def num_uncomputed(self) -> int:
        """Tokens still to run through the model before the next one can be sampled."""
        return len(self.token_ids) - self.num_computed_tokens

    @property
    def is_finished(self) -> bool:
        return self.status is SequenceStatus.FINISHED

    def sort_key(self) -> tuple:
        """Scheduling order: lower priority value first, then longest cached prefix, then age."""
        return (self.priority, -self.num_cached_tokens, self.arrival, self.seq_id)

    def block_keys(self, block_size: int) -> list[int]:
        """Prefix-cache keys of every full block of the tokens, extended as blocks fill (tokens
        only grow, or are replaced whole by `replace_tokens`)."""
        keys = self._block_keys
        parent = keys[-1] if keys else ROOT_HASH
        for start in range(len(keys) * block_size, len(self.token_ids) - block_size + 1, block_size):
            parent = block_hash(parent, tuple(self.token_ids[start : start + block_size]))
            keys.append(parent)
        return keys

    # --- state changes (the scheduler's, or a draft proposer's for its own shadow copies) --------
    def start(self, computed: int) -> None:
        """Admitted with `computed` prompt tokens already in the cache (a prefix hit)."""
        self.num_cached_tokens = self.num_computed_tokens = computed
        self.status = SequenceStatus.RUNNING

    def wait(self) -> None:
        """Back to the queue holding no KV (preempted, or admission failed): recomputed later."""
        self.num_computed_tokens = 0
        self.status = SequenceStatus.WAITING

    def advance(self, num_tokens: int) -> None:
        """`num_tokens` more tokens have their KV in the cache."""
        self.num_computed_tokens += num_tokens

    def append_token(self, token: int) -> None:
        self.token_ids.append(token)

    def replace_tokens(self, token_ids: list[int], keep: int) -> None:
        """New tokens; KV is kept only for the first `keep`, which the old tokens share."""
        self.token_ids = token_ids
        self.num_computed_tokens = min(self.num_computed_tokens, keep)
        self._block_keys = []

    def finish(self, reason: FinishReason) -> None:
        self.status, self.finish_reason = SequenceStatus.FINISHED, reason
