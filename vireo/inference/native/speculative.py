"""Speculative decoding: cheap proposers guess k tokens, one target forward verifies them all.

Proposals are deterministic (an n-gram match, or a draft model's greedy tokens), so verification
is exact: greedy requests keep the longest run that equals the target's argmax, and sampled
requests accept a proposed token x with probability p(x) and otherwise draw from p with x removed,
which leaves the output distribution exactly the target's. Depth k adapts per sequence, and
speculation switches itself off for large batches and for sequences whose guesses keep failing.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vireo.inference.native.block_manager import BlockManager
from vireo.inference.native.prompt_lookup import PromptLookupProposer
from vireo.inference.native.sampler import probabilities, token_logprobs
from vireo.inference.native.scheduler import Batch, ScheduledSeq
from vireo.inference.native.sequence import Sequence
from vireo.inference.native.spec_cost import RealizedRates, StepCost, best_depth

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
        self._cooldown: dict[int, int] = {}
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

    @property
    def draft(self):
        if self._draft is None:
            from vireo.inference.native.draft_proposer import DraftModelProposer

            self._draft = DraftModelProposer(self.draft_path, self.config, self.target_model)
        return self._draft

    # --- proposing ----------------------------------------------------------------------------
    def attach_drafts(self, batch: Batch) -> None:
        """Give speculating decodes of this batch their guesses (and KV room to verify them).

        Prompt-lookup guesses are free, so they are made first and a sequence with nothing to guess
        adds no rows; draft-model guesses cost a forward, so they are made once the depth is known.
        """
        decodes = [i for i in batch.items if i.samples and i.num_tokens == 1]
        ready = [i for i in decodes if i.seq.speculation != "off" and self._reproducible(i.seq)
                 and self._ready(i.seq)]
        if not ready:
            return
        guesses = {id(i): self._lookup(i.seq) for i in ready if i.seq.speculation == "prompt_lookup"}
        candidates = [i for i in ready if i.seq.speculation == "draft" or guesses.get(id(i))]
        if not candidates:
            return
        chosen = {id(i) for i in candidates}
        others = [i for i in batch.items if id(i) not in chosen]
        depth = best_depth(self.cost, [i.seq.spec_rate for i in candidates],
                           other_rows=sum(i.num_tokens for i in others),
                           other_tokens=sum(1 for i in others if i.samples), max_depth=self.max_k)
        if len(decodes) == len(batch.items):  # a pure decode step: what such steps delivered decides
            depth = self.realized.allow(len(decodes), depth)
        if depth == 0:
            return  # on this machine and batch, guesses would cost more time than they save
        drafted = [i for i in candidates if i.seq.speculation == "draft"]
        for item in candidates:
            if id(item) in guesses:
                item.draft = guesses[id(item)][:self._depth(item.seq, depth)]
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
        left = self._cooldown.get(seq.seq_id, 0)
        if left > 0:
            self._cooldown[seq.seq_id] = left - 1
            return False
        return True

    def _depth(self, seq: Sequence, limit: int) -> int:
        if seq.spec_k == 0:
            seq.spec_k = limit
        room = seq.sampling.max_tokens - seq.num_completion_tokens - 1  # the bonus token counts
        return max(0, min(seq.spec_k, limit, room))

    # --- verifying ----------------------------------------------------------------------------
    def verify(self, item: ScheduledSeq, logits: torch.Tensor) -> tuple[list[int], list[float] | None]:
        """Accepted tokens (+ the target's correction or bonus token) for a drafted item."""
        seq, draft = item.seq, item.draft
        if seq.sampling.greedy:
            tokens = accept_greedy(draft, logits)
        else:
            tokens = accept_sampled(draft, probabilities(logits, seq.sampling), seq.generator)
        accepted = len(tokens) - 1
        seq.num_computed_tokens += accepted  # their KV was written by this very forward
        self.blocks.trim(seq, len(seq) + len(tokens))
        self._learn(seq, len(draft), accepted)
        logprobs = token_logprobs(logits[:len(tokens)], tokens) if seq.sampling.logprobs else None
        return tokens, logprobs

    def _learn(self, seq: Sequence, proposed: int, accepted: int) -> None:
        self.proposed += proposed
        self.accepted += accepted
        self.steps += 1
        self.emitted += accepted + 1
        seq.spec_proposed += proposed
        seq.spec_accepted += accepted
        if proposed:  # per-guess odds that a guess holds once the ones before it held (geometric MLE)
            missed = 1 if accepted < proposed else 0
            seq.spec_hits = ACCEPTANCE_MEMORY * seq.spec_hits + accepted
            seq.spec_trials = ACCEPTANCE_MEMORY * seq.spec_trials + accepted + missed
        # Depth follows the run length the target keeps; long guesses that fail waste rows.
        seq.spec_k = min(self.max_k, seq.spec_k + 1) if accepted == proposed else max(1, accepted + 1)
        if seq.spec_proposed >= 8 and seq.spec_accepted < POOR_ACCEPTANCE * seq.spec_proposed:
            self._cooldown[seq.seq_id] = COOLDOWN_STEPS
            seq.spec_proposed = seq.spec_accepted = 0  # judge afresh after the pause

    def release(self, seq: Sequence) -> None:
        self._cooldown.pop(seq.seq_id, None)
        self.prompt_lookup.release(seq.seq_id)
        if self._draft is not None:
            self._draft.release(seq)
