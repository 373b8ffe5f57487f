"""Turns a scheduled batch into tensors, runs the model and returns the logits to sample from.

The KV cache is preallocated per layer as [num_blocks, block_size, kv_heads, head_dim] but left
uninitialised, so untouched blocks cost no memory; a block is zeroed before its first use because
masked-out attention slots still multiply their values by 0, and uninitialised memory may be NaN.
The flat batch puts short queries (decodes, speculative verifications) first, batched into one
attention call, then long prefill chunks. Where the kernels run (CUDA, or Triton forced), the
attention metadata is the kernels' (block tables and context lengths) and pure decode steps may
replay a CUDA graph (`cuda_graphs.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vireo.inference.native.models.attention import AttentionMetadata, PrefillChunk, ShortQueries
from vireo.inference.native.models.kernel_attention import kernel_meta
from vireo.inference.native.models.llama import LlamaModel
from vireo.inference.native.scheduling.batch import ScheduledSeq
from vireo.inference.native.scheduling.block_manager import BlockManager
from vireo.inference.native.worker.cuda_graphs import DecodeGraphs
from vireo.inference.native.worker.transfer import to_device
from vireo.kernels.dispatch import use_triton


def is_short_query(item: ScheduledSeq) -> bool:
    """Decodes and speculative verifications share one batched attention call; prompt chunks,
    even tiny ones, run on their own so they never pad every decode to their length."""
    return item.num_tokens == 1


@dataclass
class StepInputs:
    input_ids: torch.Tensor
    positions: torch.Tensor
    meta: AttentionMetadata
    order: list[ScheduledSeq]  # items in flat-batch order
    logit_rows: list[list[int]]  # per item in `order`: flat rows whose logits are needed


class ModelRunner:
    """Owns the model and its paged KV cache."""

    def __init__(
        self,
        model: LlamaModel,
        num_blocks: int,
        block_size: int,
        device: str | torch.device = "cpu",
        cuda_graphs: bool = False,
        max_batch: int = 32,
        max_context: int | None = None,
    ):
        self.model, self.block_size, self.device = model, block_size, torch.device(device)
        shape = model.shape
        self.num_blocks = num_blocks

        def cache() -> torch.Tensor:
            return torch.empty(
                num_blocks, block_size, shape.kv_heads, shape.head_dim, dtype=model.dtype, device=self.device
            )

        self.kv_caches = [(cache(), cache()) for _ in range(shape.layers)]  # (keys, values) per layer
        self.zeroed_blocks = 0
        self.graphs = None
        if cuda_graphs and self.device.type == "cuda":
            max_context = min(max_context or num_blocks * block_size, num_blocks * block_size)
            self.graphs = DecodeGraphs(model, self.kv_caches, max_batch, max_context, block_size)

    def uses_kernels(self) -> bool:
        """Whether this step runs the Triton kernels (decided like every kernel call)."""
        return use_triton(self.kv_caches[0][0])

    # --- building the step's tensors ----------------------------------------------------------
    def prepare(self, items: list[ScheduledSeq], input_ids: torch.Tensor | None = None) -> StepInputs:
        """The step's tensors; `input_ids` (device, one per item of a decode batch, in `items`
        order) stands in for tokens the host does not know yet (`overlap.py`)."""
        short = [i for i in items if is_short_query(i)]
        long = [i for i in items if not is_short_query(i)]
        ids: list[int] = []
        positions: list[int] = []
        slots: list[int] = []
        logit_rows: list[list[int]] = []
        for item in short + long:
            start, n = item.start, item.num_tokens + len(item.draft)
            if input_ids is None:
                ids += item.seq.token_ids[start : start + item.num_tokens] + item.draft
            positions += range(start, start + n)
            table, bs = item.seq.block_table, self.block_size
            slots += [table[p // bs] * bs + p % bs for p in range(start, start + n)]
            first = len(ids) - n
            logit_rows.append(list(range(first + item.num_tokens - 1, first + n)) if item.samples else [])
        if self.uses_kernels():
            meta = AttentionMetadata(self._tensor(slots), kernel=self._kernel_meta(short + long))
        else:
            meta = AttentionMetadata(
                self._tensor(slots),
                self._short_group(short),
                self._chunks(long, sum(i.num_tokens + len(i.draft) for i in short)),
            )
        if input_ids is None:
            input_ids = self._tensor(ids)
        elif long:
            raise ValueError("device input ids are for decode batches only")
        return StepInputs(input_ids, self._tensor(positions), meta, short + long, logit_rows)

    def _tensor(self, values: list[int] | list[list[int]]) -> torch.Tensor:
        return to_device(values, torch.long, self.device)

    def _kernel_meta(self, items: list[ScheduledSeq]):
        rows = [i.num_tokens + len(i.draft) for i in items]
        ends = [i.start + n for i, n in zip(items, rows)]
        return kernel_meta(rows, ends, [i.seq.block_table for i in items], self.block_size, self.device)

    def _short_group(self, items: list[ScheduledSeq]) -> ShortQueries | None:
        if not items:
            return None
        bs = self.block_size
        lens = [i.num_tokens + len(i.draft) for i in items]
        ends = [i.start + n for i, n in zip(items, lens)]
        width = -(-max(ends) // bs)
        tables = self._tensor(
            [i.seq.block_table[:width] + [0] * (width - min(width, len(i.seq.block_table))) for i in items]
        )
        q_len = max(lens)
        key_pos = torch.arange(width * bs, device=self.device)
        if q_len == 1:
            ends_t = self._tensor(ends)
            mask = key_pos[None, :] < ends_t[:, None]
            return ShortQueries(len(items), len(items), 1, tables, mask[:, None, None, :], context_lens=ends_t)
        # Query row r of a sequence sees keys up to its own position; padding rows copy the last.
        rows = torch.arange(q_len, device=self.device)[None, :]
        lens_t, ends_t = self._tensor(lens)[:, None], self._tensor(ends)[:, None]
        last_visible = ends_t - lens_t + torch.minimum(rows, lens_t - 1)  # [seqs, q_len]
        mask = key_pos[None, None, :] <= last_visible[:, :, None]
        offsets = torch.cumsum(self._tensor([0] + lens[:-1]), 0)[:, None]
        gather = (offsets + torch.minimum(rows, lens_t - 1)).reshape(-1)
        valid = (torch.arange(len(items), device=self.device)[:, None] * q_len + rows)[rows < lens_t]
        return ShortQueries(sum(lens), len(items), q_len, tables, mask[:, None], gather, valid)

    def _chunks(self, items: list[ScheduledSeq], first_row: int) -> list[PrefillChunk]:
        chunks, row = [], first_row
        for item in items:
            n = item.num_tokens + len(item.draft)
            chunk = PrefillChunk(row, row + n, item.start + n)
            if item.start > 0:  # earlier positions are cached: attend through the block table
                width = -(-chunk.context_len // self.block_size)
                chunk.block_table = self._tensor(item.seq.block_table[:width])
                query_pos = torch.arange(item.start, item.start + n, device=self.device)
                key_pos = torch.arange(chunk.context_len, device=self.device)
                chunk.mask = key_pos[None, :] <= query_pos[:, None]
            chunks.append(chunk)
            row += n
        return chunks

    # --- running ------------------------------------------------------------------------------
    def zero_new_blocks(self, high_water: int) -> None:
        """Zero blocks [zeroed_blocks, high_water) the first time the block manager hands them out."""
        if high_water > self.zeroed_blocks:
            for k_cache, v_cache in self.kv_caches:
                k_cache[self.zeroed_blocks : high_water].zero_()
                v_cache[self.zeroed_blocks : high_water].zero_()
            self.zeroed_blocks = high_water

    def prepare_cache(self, blocks: BlockManager) -> None:
        """Before a forward: zero blocks handed out for the first time, run pending copy-on-write."""
        self.zero_new_blocks(blocks.high_water)
        self.copy_blocks(blocks.take_pending_copies())

    def copy_blocks(self, copies: list[tuple[int, int]]) -> None:
        """Copy-on-write: duplicate block contents in every layer."""
        if not copies:
            return
        src = self._tensor([s for s, _ in copies])
        dst = self._tensor([d for _, d in copies])
        for k_cache, v_cache in self.kv_caches:
            k_cache.index_copy_(0, dst, k_cache.index_select(0, src))
            v_cache.index_copy_(0, dst, v_cache.index_select(0, src))

    def run(
        self, items: list[ScheduledSeq], input_ids: torch.Tensor | None = None
    ) -> tuple[StepInputs, torch.Tensor | None]:
        """Forward the batch; returns its inputs and float32 logits of every needed row, in order."""
        inputs = self.prepare(items, input_ids)
        hidden = self._forward(inputs)
        rows = [r for item_rows in inputs.logit_rows for r in item_rows]
        if not rows:
            return inputs, None
        if len(rows) == hidden.shape[0]:
            return inputs, self.model.logits(hidden)
        return inputs, self.model.logits(hidden.index_select(0, self._tensor(rows)))

    def _forward(self, inputs: StepInputs) -> torch.Tensor:
        if self.graphs is not None and self.graphs.accepts(inputs.input_ids.shape[0], inputs.meta):
            return self.graphs.run(inputs.input_ids, inputs.positions, inputs.meta)
        return self.model.forward(inputs.input_ids, inputs.positions, inputs.meta, self.kv_caches)

    def forward_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Logits [batch, seq, vocab] without touching the KV cache (used by `score`)."""
        batch, length = input_ids.shape
        chunks = [PrefillChunk(b * length, (b + 1) * length, length) for b in range(batch)]
        meta = AttentionMetadata(None, None, chunks)
        positions = torch.arange(length, device=self.device).repeat(batch)
        hidden = self.model.forward(input_ids.reshape(-1).to(self.device), positions, meta, self.kv_caches)
        return self.model.logits(hidden).view(batch, length, -1)
