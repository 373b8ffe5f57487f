"""One request's state inside the native engine: tokens, KV block table, status, output stream."""

from __future__ import annotations

import enum
import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import torch

from vireo.inference.api import SamplingParams

if TYPE_CHECKING:
    from vireo.inference.native.constraints import GrammarMatcher

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
    on_tokens: Callable[["Sequence", list[int], list[float] | None], None] | None = None
    grammar: "GrammarMatcher | None" = None  # set when the request carries a Constraint
    seq_id: int = field(default_factory=lambda: next(_ids))
    arrival: float = field(default_factory=time.monotonic)
    status: SequenceStatus = SequenceStatus.WAITING
    block_table: list[int] = field(default_factory=list)
    block_hashes: list[int] = field(default_factory=list)  # prefix-cache keys of full blocks
    num_computed_tokens: int = 0  # tokens whose KV is in the cache
    num_cached_tokens: int = 0  # of the prompt, found in the prefix cache at admission
    aborted: bool = False
    finish_reason: str | None = None
    generator: torch.Generator | None = None
    spec_k: int = 0  # current speculation depth (adapts to acceptance)
    spec_proposed: int = 0
    spec_accepted: int = 0
    spec_hits: float = 1.0  # decayed counts behind spec_rate (a 1-in-2 prior)
    spec_trials: float = 2.0

    @property
    def spec_rate(self) -> float:
        """Odds a guess holds once the guesses before it held (plans the speculation depth)."""
        return self.spec_hits / self.spec_trials

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
    def completion_ids(self) -> list[int]:
        return self.token_ids[self.num_prompt_tokens:]

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
