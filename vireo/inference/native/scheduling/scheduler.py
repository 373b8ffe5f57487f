"""Continuous batching: which sequences run this step, and how many of their tokens.

Every step spends a token budget: running sequences first (a decode costs one token, an unfinished
prefill a chunk), then waiting ones in priority order (lower `priority` first, then the longest
cached prefix, then arrival). When blocks run out, the least important running sequence is
preempted: its blocks are freed and it is recomputed later (its KV may still hit the prefix cache).
A step queued behind one still in flight (overlapped decoding) admits by the same rules, but whole
prompts only (`admit_whole`).
After the forward, `update` applies the step's results: the one place a sequence's tokens grow.
"""

from __future__ import annotations

import time
from typing import Callable

from vireo.inference.api import FinishReason
from vireo.inference.native.scheduling.batch import Batch, SampledTokens, ScheduledSeq, SeqUpdate
from vireo.inference.native.scheduling.block_manager import BlockManager
from vireo.inference.native.scheduling.sequence import Sequence

# Called with each shown token in order: the detokenizer takes its text and says whether a stop
# string has now appeared (`outputs.RequestOutputs.push`).
StopStrings = Callable[[Sequence, int], bool]


def _no_stop_strings(seq: Sequence, token: int) -> bool:
    return False


def _anyone(seq: Sequence) -> bool:
    return True


class Scheduler:
    """Waiting and running queues over one `BlockManager`; owns its sequences' state."""

    def __init__(
        self,
        blocks: BlockManager,
        max_batch: int = 32,
        max_tokens_per_step: int = 512,
        eos_token_ids: frozenset[int] = frozenset(),
        max_model_len: int | None = None,
    ):
        self.blocks = blocks
        self.max_batch = max_batch
        self.max_tokens_per_step = max_tokens_per_step
        self.eos_token_ids = eos_token_ids
        self.max_model_len = max_model_len
        self.waiting: list[Sequence] = []
        self.running: list[Sequence] = []
        self.num_preemptions = 0

    def add(self, seq: Sequence) -> None:
        seq.wait()
        self.waiting.append(seq)

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def finish(self, seq: Sequence, reason: FinishReason) -> None:
        """Take `seq` out of the queues for good and free its blocks."""
        seq.finish(reason)
        if seq in self.running:
            self.running.remove(seq)
        if seq in self.waiting:
            self.waiting.remove(seq)
        self.blocks.free(seq)

    # --- planning a step --------------------------------------------------------------------------
    def admission_due(self, waited_s: float, window_s: float) -> bool:
        """Whether waiting sequences should join the next step, the oldest having waited `waited_s`: never
        while the batch is full (decoding stays overlapped); at once where nothing runs or there is no
        window; else once the waiting ones fill every free place, or once they have waited the window's
        share that the batch fills (a full batch, where arrivals are most frequent, waits it all; a
        batch of a few, almost not): arrivals gathered into one mixed prefill step instead of one each."""
        free = self.max_batch - len(self.running)
        if not self.waiting or free <= 0:
            return False
        if not self.running or window_s <= 0:
            return True
        return len(self.waiting) >= free or waited_s >= window_s * len(self.running) / self.max_batch

    def schedule(self, admit: bool = True) -> Batch:
        """This step's batch; waiting sequences join it only where `admit` (or where nothing runs)."""
        budget = self.max_tokens_per_step
        batch = Batch([])
        self.running.sort(key=Sequence.sort_key)
        budget = self._schedule_running(batch, budget)
        if not batch.preempted and (admit or not self.running):
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
        seq.wait()
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

    def admit_whole(self, batch: Batch, budget: int, may_join: Callable[[Sequence], bool]) -> None:
        """Admit waiting sequences into `batch` (a step queued behind one in flight) within `budget`
        tokens, in the usual order, each with its whole uncomputed prompt so that it samples; stop at
        the first that `may_join` refuses or that does not fit whole (the usual step takes it later)."""
        self._admit_waiting(batch, budget, may_join, whole=True)

    def _admit_waiting(
        self, batch: Batch, budget: int, may_join: Callable[[Sequence], bool] = _anyone, whole: bool = False
    ) -> None:
        if not self.waiting:
            return
        for seq in self.waiting:
            seq.num_cached_tokens = self.blocks.cached_prefix_tokens(seq)
        self.waiting.sort(key=Sequence.sort_key)
        while self.waiting and budget > 0 and len(self.running) < self.max_batch:
            seq = self.waiting[0]
            if not may_join(seq):
                break
            seq.start(self.blocks.match_prefix(seq))
            num = min(seq.num_uncomputed, budget)
            if (whole and num < seq.num_uncomputed) or not self._reserve(seq, num):
                self.blocks.free(seq)  # give back the prefix references until it fits
                seq.wait()
                break
            self.blocks.record_admission(seq)
            if seq.scheduled_at is None:  # (a preempted sequence admitted again keeps its first time)
                seq.scheduled_at = time.time()
            self.waiting.pop(0)
            self.running.append(seq)
            batch.items.append(ScheduledSeq(seq, num))
            budget -= num

    # --- applying a step's results ----------------------------------------------------------------
    def update(
        self,
        items: list[ScheduledSeq],
        sampled: dict[ScheduledSeq, SampledTokens],
        stop_strings: StopStrings = _no_stop_strings,
    ) -> list[SeqUpdate]:
        """After a forward over `items` (in the flat batch's order): advance computed tokens
        (verified guesses included; blocks past them are released), name newly full blocks in
        the prefix cache, append sampled tokens and finish sequences that are done. A sequence
        finished since the batch was made (aborted while a step was in flight) takes nothing."""
        live = [item for item in items if not item.seq.is_finished]
        for item in live:
            if item in sampled:
                self._advance_sampled(item, sampled[item].tokens)
        updates = []
        for item in live:
            if item not in sampled:
                item.seq.advance(item.num_tokens)
            self.blocks.commit(item.seq)
            if item in sampled:
                updates.append(self._append(item.seq, *sampled[item], stop_strings))
        return updates

    def _advance_sampled(self, item: ScheduledSeq, tokens: list[int]) -> None:
        seq = item.seq
        accepted = len(tokens) - 1  # verified guesses: their KV was written by this very forward
        seq.advance(item.num_tokens + accepted)
        if item.draft:
            self.blocks.trim(seq, len(seq) + len(tokens))

    def _append(
        self, seq: Sequence, tokens: list[int], logprobs: list[float] | None, stop_strings: StopStrings
    ) -> SeqUpdate:
        """Append accepted tokens up to the first that ends the sequence; finish it if one does."""
        shown: list[int] = []
        reason: FinishReason | None = None
        for count, token in enumerate(tokens, 1):
            seq.append_token(token)
            if token in self.eos_token_ids and not seq.sampling.ignore_eos:
                reason = "stop"
                break
            shown.append(token)
            if stop_strings(seq, token) or self._grammar_complete(seq, token):
                reason = "stop"
            elif seq.num_completion_tokens >= seq.sampling.max_tokens or (
                self.max_model_len is not None and len(seq) >= self.max_model_len
            ):
                reason = "length"
            if reason:
                break
        if reason:
            self.finish(seq, reason)
        return SeqUpdate(seq, shown, logprobs[: len(shown)] if logprobs is not None else None, count, reason)

    @staticmethod
    def _grammar_complete(seq: Sequence, token: int) -> bool:
        """Advance a constrained sequence's grammar; True once the output is whole."""
        if seq.grammar is None:
            return False
        seq.grammar.advance(token)
        return seq.grammar.is_complete
