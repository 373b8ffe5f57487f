"""The next tokens of one step: drafted rows verified by the speculator, every other row in one
grammar-masked argmax (plus a draw for each sampled row). Nothing here changes a sequence: the
scheduler applies the result (`Scheduler.update`)."""

from __future__ import annotations

import torch

from vireo.inference.native.sampling.constraints import ConstrainedDecoding
from vireo.inference.native.sampling.sampler import sample_rows, token_logprobs
from vireo.inference.native.scheduling.batch import SampledTokens, ScheduledSeq
from vireo.inference.native.spec_decode.speculative import Speculator
from vireo.inference.native.worker.model_runner import StepInputs


class StepSampler:
    """Turns a step's logits into `SampledTokens` for each item that samples."""

    def __init__(self, constraints: ConstrainedDecoding, speculator: Speculator):
        self.constraints, self.speculator = constraints, speculator

    def sample(self, inputs: StepInputs, logits: torch.Tensor | None) -> dict[ScheduledSeq, SampledTokens]:
        if logits is None:  # no row of this step samples (`ModelRunner.run`)
            return {}
        rows_of = [(item, rows) for item, rows in zip(inputs.order, inputs.logit_rows) if rows]
        sampled: dict[ScheduledSeq, SampledTokens] = {}
        offset = 0
        for item, rows in rows_of:
            if item.draft:
                sampled[item] = self.speculator.verify(item, logits[offset : offset + len(rows)])
            offset += len(rows)
        self._sample_plain(rows_of, logits, sampled)
        return sampled

    def _sample_plain(self, rows_of, logits: torch.Tensor, sampled: dict[ScheduledSeq, SampledTokens]) -> None:
        """One argmax over every non-speculative row (and a draw for each sampled one)."""
        items, rows = [], []
        offset = 0
        for item, item_rows in rows_of:
            if not item.draft:
                items.append(item)
                rows.append(offset)
            offset += len(item_rows)
        if not rows:
            return
        seqs = [item.seq for item in items]
        picked = logits if len(rows) == logits.shape[0] else logits[torch.tensor(rows)]
        allowed = self.constraints.mask(picked, [s.grammar for s in seqs])
        tokens = sample_rows(allowed, [s.sampling for s in seqs], [s.generator for s in seqs])
        want = [i for i, s in enumerate(seqs) if s.sampling.logprobs]
        logprobs = dict(zip(want, token_logprobs(picked[want], [tokens[i] for i in want]))) if want else {}
        for i, item in enumerate(items):
            sampled[item] = SampledTokens([tokens[i]], [logprobs[i]] if i in logprobs else None)
