"""A same-tokenizer draft model that guesses k tokens greedily for each speculating sequence.

The draft keeps its own small paged KV cache with a shadow sequence per target sequence. Each
step the shadow is synced to the target's tokens (dropping KV of guesses that were rejected), the
missing tokens are run, and k greedy tokens are drafted, all sequences batched per round.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vireo.inference.api import SamplingParams
from vireo.inference.local import torch_dtype
from vireo.inference.native.models.llama import LlamaModel
from vireo.inference.native.scheduling.batch import ScheduledSeq
from vireo.inference.native.scheduling.block_manager import BlockManager
from vireo.inference.native.scheduling.sequence import Sequence
from vireo.inference.native.worker.model_runner import ModelRunner

DRAFT_CACHE_SHARE = 4  # the draft's cache holds this fraction (1/n) of the target's tokens


def _common_prefix(a: list[int], b: list[int], start: int) -> int:
    end = min(len(a), len(b))
    i = min(start, end)
    while i < end and a[i] == b[i]:
        i += 1
    return i


class DraftModelProposer:
    """Greedy guesses from a smaller model sharing the target's tokenizer."""

    def __init__(self, path: Path, config, target: tuple[Path, LlamaModel] | None = None):
        if target is not None and Path(target[0]) == Path(path):
            self.model = target[1]  # same weights (tests, self-drafting): share them
        else:
            self.model = LlamaModel.from_pretrained(
                path, torch_dtype(config.dtype), config.max_batch, config.device, dense_gemv=config.dense_gemv
            )
        if target is not None and self.model.shape.vocab != target[1].shape.vocab:
            raise ValueError("the draft model must share the target's vocabulary")
        num_blocks = max(64, config.kv_cache_tokens // config.block_size // DRAFT_CACHE_SHARE)
        self.blocks = BlockManager(num_blocks, config.block_size)
        self.runner = ModelRunner(
            self.model, num_blocks, config.block_size, config.device, kv_dtype=torch_dtype(config.kv_cache_dtype)
        )
        with torch.inference_mode():
            self.runner.warm_up_kernels()  # the draft's own shapes: its Triton variants compiled now too
        self.shadows: dict[int, Sequence] = {}  # by the target's seq_id
        self.synced: dict[int, int] = {}  # target tokens the shadow copied at its last sync

    def _shadow(self, seq: Sequence) -> Sequence:
        shadow = self.shadows.get(seq.seq_id)
        if shadow is None:
            shadow = self.shadows[seq.seq_id] = Sequence(seq.request_id, [], SamplingParams())
        # The target's first `synced` tokens were copied last time and have not changed since.
        keep = _common_prefix(shadow.token_ids, seq.token_ids, self.synced.get(seq.seq_id, 0))
        shadow.replace_tokens(list(seq.token_ids), keep)
        self.synced[seq.seq_id] = len(seq.token_ids)
        return shadow

    def propose(self, seqs: list[Sequence], ks: list[int]) -> list[list[int]]:
        """k greedy draft tokens for each sequence (empty lists if the draft cache is full)."""
        shadows = [self._shadow(s) for s in seqs]
        for shadow, k in zip(shadows, ks):
            if not self.blocks.allocate(shadow, len(shadow) + k):
                for s in seqs:
                    self.release(s)
                return [[] for _ in seqs]
        self.runner.zero_new_blocks(self.blocks.high_water)
        guesses: list[list[int]] = [[] for _ in seqs]
        for _ in range(max(ks)):
            active = [i for i, k in enumerate(ks) if len(guesses[i]) < k]
            items = [ScheduledSeq(shadows[i], shadows[i].num_uncomputed) for i in active]
            inputs, logits = self.runner.run(items)
            assert logits is not None  # every draft item samples its next token
            order = {id(item.seq): row for row, item in enumerate(inputs.order)}
            tokens = logits.argmax(dim=-1).tolist()
            for i, item in zip(active, items):
                token = tokens[order[id(item.seq)]]
                item.seq.advance(item.num_tokens)
                item.seq.append_token(token)
                guesses[i].append(token)
        return guesses

    def release(self, seq: Sequence) -> None:
        shadow = self.shadows.pop(seq.seq_id, None)
        self.synced.pop(seq.seq_id, None)
        if shadow is not None:
            self.blocks.free(shadow)
