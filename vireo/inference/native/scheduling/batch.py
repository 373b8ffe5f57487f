"""What one step runs (`Batch` of `ScheduledSeq`) and what it gave back (`SampledTokens` per item,
`SeqUpdate` per sequence once the scheduler has applied them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from vireo.inference.api import FinishReason
from vireo.inference.native.scheduling.sequence import Sequence


@dataclass(eq=False)
class ScheduledSeq:
    """One sequence in this step: run `num_tokens` of its uncomputed tokens, then `draft` ones."""

    seq: Sequence
    num_tokens: int
    draft: list[int] = field(default_factory=list)
    start: int = field(init=False)  # first position computed this step

    def __post_init__(self) -> None:
        self.start = self.seq.num_computed_tokens

    @property
    def samples(self) -> bool:
        """Whether this step completes the sequence's known tokens, so a new one is sampled."""
        return self.start + self.num_tokens == len(self.seq)


@dataclass
class Batch:
    items: list[ScheduledSeq]
    preempted: list[Sequence] = field(default_factory=list)

    @property
    def num_tokens(self) -> int:
        return sum(i.num_tokens + len(i.draft) for i in self.items)


class SampledTokens(NamedTuple):
    """A sampling item's new tokens: one, or a verified run of guesses plus the model's own."""

    tokens: list[int]
    logprobs: list[float] | None = None


@dataclass
class SeqUpdate:
    """What a step added to one sequence: the tokens to show (EOS is kept but not shown), their
    logprobs, how many tokens were appended, and the finish reason if the sequence is done."""

    seq: Sequence
    shown: list[int]
    logprobs: list[float] | None
    appended: int
    finish_reason: FinishReason | None = None
