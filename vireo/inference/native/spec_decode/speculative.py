"""Speculative decoding: cheap proposers guess k tokens, one target forward verifies them all.

Proposals are deterministic (an n-gram match, or a draft model's greedy tokens), so verification
is exact: greedy requests keep the longest run that equals the target's argmax, and sampled
requests accept a proposed token x with probability p(x) and otherwise draw from p with x removed,
which leaves the output distribution exactly the target's. Depth k adapts per sequence, and
speculation switches itself off for large batches and for sequences whose guesses keep failing.
The speculator keeps its per-sequence state (`SpecState`) itself; the scheduler applies the
verified tokens (`Scheduler.update`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from vireo.inference.native.sampling.sampler import probabilities, token_logprobs
from vireo.inference.native.scheduling.batch import Batch, SampledTokens, ScheduledSeq
from vireo.inference.native.scheduling.block_manager import BlockManager
from vireo.inference.native.scheduling.sequence import Sequence
from vireo.inference.native.spec_decode.prompt_lookup import PromptLookupProposer
from vireo.inference.native.spec_decode.spec_cost import RealizedRates, StepCost, best_depth

MODES = ("off", "prompt_lookup", "draft")
COOLDOWN_STEPS = 16  # plain steps before a sequence with poor acceptance tries again
POOR_ACCEPTANCE = 0.25
ACCEPTANCE_MEMORY = 0.7  # weight of the past in a sequence's running acceptance rate
# Each draft-model guess costs one more sequential draft forward, which the step-cost model (rows
# of the target's forward) does not see; the draft pair was measured at this depth (spec.json).
DRAFT_MAX_GUESSES = 4


def accept_greedy(draft: list[int], logits: torch.Tensor) -> list[int]:
    """Target argmax tokens up to and including the first one that differs from the draft."""
    target = logits.argmax(dim=-1).tolist()
    out = []
    for proposed, wanted in zip(draft, target):
        out.append(wanted)
        if proposed != wanted:
            return out
    out.append(target[len(draft)])  # every guess held: the bonus token comes free
    return out


def accept_sampled(draft: list[int], probs: torch.Tensor, generator: torch.Generator | None) -> list[int]:
    """Rejection sampling for deterministic proposals: outputs are distributed exactly as `probs`.

    `probs` [len(draft) + 1, vocab] are the target's distributions at each verified position.
    """
    out = []
    for i, proposed in enumerate(draft):
        u = float(torch.rand(1, generator=generator))
        if u < float(probs[i, proposed]):
            out.append(proposed)
            continue
        residual = probs[i].clone()
        residual[proposed] = 0.0
        out.append(int(torch.multinomial(residual / residual.sum(), 1, generator=generator)))
        return out
    out.append(int(torch.multinomial(probs[len(draft)], 1, generator=generator)))
    return out


@dataclass
class SpecState:
    """One sequence's speculation: current depth, recent acceptance, a pause after poor luck."""

    k: int = 0  # current depth (adapts to acceptance); 0 until first planned
    proposed: int = 0
    accepted: int = 0
    hits: float = 1.0  # decayed counts behind `rate` (a 1-in-2 prior)
    trials: float = 2.0
    cooldown: int = 0  # plain steps left before it guesses again

    @property
    def rate(self) -> float:
        """Odds a guess holds once the guesses before it held (plans the speculation depth)."""
        return self.hits / self.trials


class Speculator:
    """Per-step policy: who speculates, how deep, with which proposer; and verification."""

    def __init__(self, config, blocks: BlockManager, draft_path: Path | None = None, target_model=None):
        self.default = config.speculation
        self.max_k = max(0, config.num_speculative_tokens)
        self.blocks = blocks
        self.prompt_lookup = PromptLookupProposer()
        self.draft_path, self.target_model, self.config = draft_path, target_model, config
        self._draft = None
        self.proposed = self.accepted = self.steps = self.emitted = 0
        self.states: dict[int, SpecState] = {}  # by seq_id, dropped when the sequence finishes
        self.cost = StepCost()  # the engine reports its decode steps' durations here
        self.realized = RealizedRates()

    def mode_for(self, requested: str | None) -> str:
        """The request's own choice, else the engine default ('auto' = the request decides)."""
        if self.default == "off" or self.max_k == 0:
            return "off"
        mode = requested if requested is not None else self.default
        if mode not in MODES:
            return "off"
        if mode == "draft" and self.draft_path is None:
            return "prompt_lookup"  # no draft model configured: fall back to the free proposer
        return mode

    def state(self, seq: Sequence) -> SpecState:
        state = self.states.get(seq.seq_id)
        if state is None:
            state = self.states[seq.seq_id] = SpecState()
        return state

    @property
    def draft(self):
        if self._draft is None:
            from vireo.inference.native.spec_decode.draft_proposer import DraftModelProposer

            self._draft = DraftModelProposer(self.draft_path, self.config, self.target_model)
        return self._draft

    # --- proposing ----------------------------------------------------------------------------
    def attach_drafts(self, batch: Batch) -> None:
        """Give speculating decodes of this batch their guesses (and KV room to verify them).

        Prompt-lookup guesses are free, so they are made first and a sequence with nothing to guess
        adds no rows; draft-model guesses cost a forward, so they are made once the depth is known.
        """
        decodes = [i for i in batch.items if i.samples and i.num_tokens == 1]
        ready = [i for i in decodes if i.seq.speculation != "off" and self._reproducible(i.seq) and self._ready(i.seq)]
        if not ready:
            return
        guesses = {i: self._lookup(i.seq) for i in ready if i.seq.speculation == "prompt_lookup"}
        candidates = [i for i in ready if i.seq.speculation == "draft" or guesses.get(i)]
        if not candidates:
            return
        others = [i for i in batch.items if i not in candidates]
        depth = best_depth(
            self.cost,
            [self.state(i.seq).rate for i in candidates],
            other_rows=sum(i.num_tokens for i in others),
            other_tokens=sum(1 for i in others if i.samples),
            max_depth=self.max_k,
        )
        if len(decodes) == len(batch.items):  # a pure decode step: what such steps delivered decides
            depth = self.realized.allow(len(decodes), depth)
        if depth == 0:
            return  # on this machine and batch, guesses would cost more time than they save
        drafted = [i for i in candidates if i.seq.speculation == "draft"]
        for item in candidates:
            if item in guesses:
                item.draft = guesses[item][: self._depth(item.seq, depth)]
        if drafted:
            wants = [min(self._depth(i.seq, depth), DRAFT_MAX_GUESSES) for i in drafted]
            for item, guess in zip(drafted, self.draft.propose([i.seq for i in drafted], wants)):
                item.draft = guess
        for item in candidates:
            if item.draft and not self.blocks.allocate(item.seq, len(item.seq) + len(item.draft)):
                item.draft = []

    def observe_step(self, batch: Batch, tokens: int, seconds: float) -> None:
        """A decode-only step took `seconds` and emitted `tokens`: teach the cost model and the check."""
        self.cost.observe(batch.num_tokens, seconds)
        speculated = any(item.draft for item in batch.items)
        self.realized.record(len(batch.items), speculated, tokens, seconds)

    @staticmethod
    def _reproducible(seq: Sequence) -> bool:
        """A seeded sampled request does not speculate: its draws must not depend on the batch
        (rejection sampling draws more or fewer numbers depending on the depth the batch got)."""
        return seq.sampling.greedy or seq.sampling.seed is None

    def _lookup(self, seq: Sequence) -> list[int]:
        return self.prompt_lookup.propose(seq.seq_id, seq.token_ids, self._depth(seq, self.max_k))

    def _ready(self, seq: Sequence) -> bool:
        state = self.state(seq)
        if state.cooldown > 0:
            state.cooldown -= 1
            return False
        return True

    def _depth(self, seq: Sequence, limit: int) -> int:
        state = self.state(seq)
        if state.k == 0:
            state.k = limit
        room = seq.sampling.max_tokens - seq.num_completion_tokens - 1  # the bonus token counts
        return max(0, min(state.k, limit, room))

    # --- verifying ----------------------------------------------------------------------------
    def verify(self, item: ScheduledSeq, logits: torch.Tensor) -> SampledTokens:
        """Accepted tokens (+ the target's correction or bonus token) for a drafted item."""
        seq, draft = item.seq, item.draft
        if seq.sampling.greedy:
            tokens = accept_greedy(draft, logits)
        else:
            tokens = accept_sampled(draft, probabilities(logits, seq.sampling), seq.generator)
        self._learn(seq, len(draft), len(tokens) - 1)
        logprobs = token_logprobs(logits[: len(tokens)], tokens) if seq.sampling.logprobs else None
        return SampledTokens(tokens, logprobs)

    def _learn(self, seq: Sequence, proposed: int, accepted: int) -> None:
        self.proposed += proposed
        self.accepted += accepted
        self.steps += 1
        self.emitted += accepted + 1
        state = self.state(seq)
        state.proposed += proposed
        state.accepted += accepted
        if proposed:  # per-guess odds that a guess holds once the ones before it held (geometric MLE)
            missed = 1 if accepted < proposed else 0
            state.hits = ACCEPTANCE_MEMORY * state.hits + accepted
            state.trials = ACCEPTANCE_MEMORY * state.trials + accepted + missed
        # Depth follows the run length the target keeps; long guesses that fail waste rows.
        state.k = min(self.max_k, state.k + 1) if accepted == proposed else max(1, accepted + 1)
        if state.proposed >= 8 and state.accepted < POOR_ACCEPTANCE * state.proposed:
            state.cooldown = COOLDOWN_STEPS
            state.proposed = state.accepted = 0  # judge afresh after the pause

    def release(self, seq: Sequence) -> None:
        self.states.pop(seq.seq_id, None)
        self.prompt_lookup.release(seq.seq_id)
        if self._draft is not None:
            self._draft.release(seq)
