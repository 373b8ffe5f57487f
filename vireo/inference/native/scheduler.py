"""Continuous batching: which sequences run this step, and how many of their tokens.

Every step spends a token budget: running sequences first (a decode costs one token, an unfinished
prefill a chunk), then waiting ones in priority order (lower `priority` first, then the longest
cached prefix, then arrival). When blocks run out, the least important running sequence is
preempted: its blocks are freed and it is recomputed later (its KV may still hit the prefix cache).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vireo.inference.native.block_manager import BlockManager
from vireo.inference.native.sequence import Sequence, SequenceStatus


@dataclass
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


class Scheduler:
    """Waiting and running queues over one `BlockManager`."""

    def __init__(self, blocks: BlockManager, max_batch: int = 32, max_tokens_per_step: int = 512):
        self.blocks = blocks
        self.max_batch = max_batch
        self.max_tokens_per_step = max_tokens_per_step
        self.waiting: list[Sequence] = []
        self.running: list[Sequence] = []
        self.num_preemptions = 0

    def add(self, seq: Sequence) -> None:
        seq.status = SequenceStatus.WAITING
        self.waiting.append(seq)

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def finish(self, seq: Sequence, reason: str) -> None:
        """Take `seq` out of the queues for good and free its blocks."""
        seq.status, seq.finish_reason = SequenceStatus.FINISHED, reason
        if seq in self.running:
            self.running.remove(seq)
        if seq in self.waiting:
            self.waiting.remove(seq)
        self.blocks.free(seq)

    def schedule(self) -> Batch:
        budget = self.max_tokens_per_step
        batch = Batch([])
        self.running.sort(key=Sequence.sort_key)
        budget = self._schedule_running(batch, budget)
        if not batch.preempted:
            self._admit_waiting(batch, budget)
        return batch

    def _schedule_running(self, batch: Batch, budget: int) -> int:
        for seq in list(self.running):
            if seq not in self.running:  # preempted by a more important sequence this step
                continue
            if budget <= 0:
                break
            num = min(seq.num_uncomputed, budget)
            while not self.blocks.allocate(seq, seq.num_computed_tokens + num):
                victim = self.running[-1]
                self._preempt(victim, batch)
                if victim is seq:
                    break
            else:
                batch.items.append(ScheduledSeq(seq, num))
                budget -= num
        return budget

    def _preempt(self, seq: Sequence, batch: Batch) -> None:
        self.running.remove(seq)
        batch.items = [i for i in batch.items if i.seq is not seq]
        self.blocks.free(seq)
        seq.num_computed_tokens = 0
        seq.status = SequenceStatus.WAITING
        self.waiting.append(seq)
        batch.preempted.append(seq)
        self.num_preemptions += 1

    def _reserve(self, seq: Sequence, num: int) -> bool:
        """Blocks for `num` new tokens, copying a shared block first if one of them lands in it."""
        end = seq.num_computed_tokens + num
        extra = 1 if seq.num_computed_tokens % self.blocks.block_size else 0  # copy-on-write room
        if self.blocks.blocks_needed(seq, end) + extra > self.blocks.num_free:
            return False
        self.blocks.allocate(seq, end)
        self.blocks.prepare_write(seq, seq.num_computed_tokens, end)
        return True

    def _admit_waiting(self, batch: Batch, budget: int) -> None:
        if not self.waiting:
            return
        for seq in self.waiting:
            seq.num_cached_tokens = self.blocks.cached_prefix_tokens(seq)
        self.waiting.sort(key=Sequence.sort_key)
        while self.waiting and budget > 0 and len(self.running) < self.max_batch:
            seq = self.waiting[0]
            seq.num_cached_tokens = seq.num_computed_tokens = self.blocks.match_prefix(seq)
            num = min(seq.num_uncomputed, budget)
            if not self._reserve(seq, num):
                self.blocks.free(seq)  # give back the prefix references until it fits
                seq.num_computed_tokens = 0
                break
            self.blocks.record_admission(seq)
            self.waiting.pop(0)
            seq.status = SequenceStatus.RUNNING
            self.running.append(seq)
            batch.items.append(ScheduledSeq(seq, num))
            budget -= num
