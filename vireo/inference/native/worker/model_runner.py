"""Turns a scheduled batch into tensors, runs the model and returns the logits to sample from.

The KV cache is preallocated per layer as [num_blocks, block_size, kv_heads, head_dim] but left
uninitialised, so untouched blocks cost no memory; a block is zeroed before its first use because
masked-out attention slots still multiply their values by 0, and uninitialised memory may be NaN.
The flat batch puts short queries (decodes, speculative verifications) first, batched into one
attention call, then long prefill chunks. A step queued behind one in flight (`overlap.py`) takes
its leading decodes' token ids from the device, where they are being sampled, and plans the rest
(prompts admitted into it) on the host. Where the kernels run (CUDA, or Triton forced), the
attention metadata is the kernels' (block tables and context lengths) and pure decode steps may
replay a CUDA graph (`cuda_graphs.py`), other steps the graphs of their pieces between attention calls
(`piecewise_graphs.py`, where `piecewise_graphs` is set).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vireo.inference.engine_config import CUDA_TOKENS_PER_STEP
from vireo.inference.native.models.attention import AttentionMetadata, PrefillChunk, ShortQueries
from vireo.inference.native.models.kernel_attention import kernel_meta
from vireo.inference.native.models.llama import LlamaModel
from vireo.inference.native.scheduling.batch import ScheduledSeq
from vireo.inference.native.scheduling.block_manager import BlockManager
from vireo.inference.native.worker.cuda_graphs import DecodeGraphs
from vireo.inference.native.worker.piecewise_graphs import PiecewiseGraphs
from vireo.inference.native.worker.transfer import to_device
from vireo.kernels.dispatch import use_triton


def is_short_query(item: ScheduledSeq) -> bool:
    """Decodes and speculative verifications share one batched attention call; prompt chunks,
    even tiny ones, run on their own so they never pad every decode to their length."""
    return item.num_tokens == 1


def flat_order(items: list[ScheduledSeq]) -> list[ScheduledSeq]:
    """The flat batch's order: short queries first, then prompt chunks."""
    return [i for i in items if is_short_query(i)] + [i for i in items if not is_short_query(i)]


@dataclass
class PlannedSeq:
    """What the step needs of one scheduled item, as host integers."""

    start: int  # first position computed
    num_tokens: int  # of the sequence's own tokens, then `num_draft` guesses
    num_draft: int
    block_table: list[int]  # the blocks up to this step's last position
    samples: bool  # a new token is sampled after this step

    @property
    def rows(self) -> int:
        return self.num_tokens + self.num_draft


@dataclass
class StepPlan:
    """One step in host integers, short queries first: what `ModelRunner.inputs` makes tensors of."""

    seqs: list[PlannedSeq]
    num_short: int
    ids: list[int]  # the token ids of every row after the first `device_rows`
    # leading decode rows whose token ids come as a device tensor: tokens still being sampled (`overlap.py`)
    device_rows: int = 0


@dataclass
class StepInputs:
    input_ids: torch.Tensor
    positions: torch.Tensor
    meta: AttentionMetadata
    order: list[ScheduledSeq]  # items in flat-batch order
    logit_rows: list[list[int]]  # per item in `order`: flat rows whose logits are needed


# Steps (a sequence's first position and rows, short queries first) that between them launch every Triton
# kernel variant a served step can: the tuned tables pick tiles by query length (up to 16, up to 64, longer:
# flash prefill for fresh prompts, each with a row count that is a multiple of 16 and one that is not, for the
# tensor descriptors over them; paged prefill beside decodes or after a cached prefix) and quantized matmuls by
# rows (2-8, up to 16, more). Pure decode steps are left out: capturing the decode CUDA graphs compiles theirs.
WARM_UP_STEPS: tuple[tuple[tuple[int, int], ...], ...] = (
    *(((0, rows),) for rows in (2, 4, 8, 16, 40, 64, 100, 128)),
    *(((16, 1), (16, rows)) for rows in (16, 64, 128)),
)


def device_rows_of(input_ids: torch.Tensor | None) -> int:
    """How many leading rows of a step take their token ids from `input_ids` (a device tensor, or none)."""
    return 0 if input_ids is None else input_ids.shape[0]


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
        kv_dtype: torch.dtype | None = None,
        piecewise_graphs: bool = False,
        max_tokens_per_step: int = CUDA_TOKENS_PER_STEP,
    ):
        self.model, self.block_size, self.device = model, block_size, torch.device(device)
        kv_dtype = kv_dtype or model.dtype  # float16 on a CPU: the attention kernel reads it (cpu_attention)
        shape = model.shape
        self.num_blocks = num_blocks

        def cache() -> torch.Tensor:
            return torch.empty(
                num_blocks, block_size, shape.kv_heads, shape.head_dim, dtype=kv_dtype, device=self.device
            )

        self.kv_caches = [(cache(), cache()) for _ in range(shape.layers)]  # (keys, values) per layer
        self.zeroed_blocks = 0
        self.graphs = None
        if cuda_graphs and self.device.type == "cuda":
            max_context = min(max_context or num_blocks * block_size, num_blocks * block_size)
            self.graphs = DecodeGraphs(model, self.kv_caches, max_batch, max_context, block_size)
        self.step_graphs = None  # every other step but its attention (one device, the kernels' path)
        if piecewise_graphs and self.device.type == "cuda" and model.tp is None:
            self.step_graphs = PiecewiseGraphs(model, self.kv_caches, max_tokens_per_step)

    def uses_kernels(self) -> bool:
        """Whether this step runs the Triton kernels (decided like every kernel call)."""
        return use_triton(self.kv_caches[0][0])

    def warm_up_kernels(self) -> int:
        """On CUDA, before any request: run the model once over each of `WARM_UP_STEPS` (in scratch blocks, which
        are zeroed again when first handed out; results dropped), so that Triton compiles its kernel variants
        now. Compiled inside a served step, a variant stalls every running request for about a second (an H100,
        2026-12-07: each 32-client level that ran slow had one compile in its measured time, the others none).
        Returns how many steps ran."""
        if self.device.type != "cuda" or not self.uses_kernels():
            return 0
        plans = [plan for plan in map(self.warm_up_plan, WARM_UP_STEPS) if plan is not None]
        for plan in plans:
            self.run_plan(plan)
        torch.cuda.synchronize(self.device)
        return len(plans)

    def capture_graphs(self) -> None:
        """Capture the decode CUDA graphs now, at start, so that the first decode step of the first request
        does not wait for it (every batch size, a few seconds on an H100 host)."""
        if self.graphs is not None and not self.graphs.graphs:
            self.graphs.capture()
        if self.step_graphs is not None and not self.step_graphs.graphs:
            self.step_graphs.capture()

    def run_plan(self, plan: StepPlan) -> torch.Tensor | None:
        """Run a planned step whose rows all come from the host (tensor parallelism: on every rank)."""
        return self.run_inputs(self.inputs(plan))

    def warm_up_plan(self, step: tuple[tuple[int, int], ...]) -> StepPlan | None:
        """One of `WARM_UP_STEPS` as a plan over the first blocks of the cache (None if they are too few)."""
        seqs, taken = [], 0
        for start, rows in step:
            blocks = -(-(start + rows) // self.block_size)
            seqs.append(PlannedSeq(start, rows, 0, list(range(taken, taken + blocks)), samples=True))
            taken += blocks
        if taken > self.num_blocks:
            return None
        return StepPlan(seqs, sum(rows == 1 for _, rows in step), [0] * sum(rows for _, rows in step))

    # --- building the step's tensors ----------------------------------------------------------
    def plan(self, items: list[ScheduledSeq], device_rows: int = 0) -> StepPlan:
        """The step as host integers, short queries first (what a tensor-parallel rank is sent); the
        token ids of its first `device_rows` rows are left out: they come as a device tensor."""
        ids: list[int] = []
        seqs = []
        for index, item in enumerate(flat_order(items)):
            if index >= device_rows:
                ids += item.seq.token_ids[item.start : item.start + item.num_tokens] + item.draft
            end = item.start + item.num_tokens + len(item.draft)
            table = item.seq.block_table[: -(-end // self.block_size)]
            seqs.append(PlannedSeq(item.start, item.num_tokens, len(item.draft), table, item.samples))
        return StepPlan(seqs, sum(is_short_query(i) for i in items), ids, device_rows)

    def prepare(self, items: list[ScheduledSeq], input_ids: torch.Tensor | None = None) -> StepInputs:
        """The step's tensors; `input_ids` (device, one per row) stands for the token ids of the flat
        batch's first rows, decodes of tokens the host does not know yet (`overlap.py`): the caller
        lists those decodes first, so that `flat_order` keeps them first."""
        return self.inputs(self.plan(items, device_rows_of(input_ids)), input_ids, flat_order(items))

    def inputs(
        self, plan: StepPlan, input_ids: torch.Tensor | None = None, order: list[ScheduledSeq] | None = None
    ) -> StepInputs:
        """The tensors of a planned step (`order`: the scheduled items behind `plan.seqs`, if known here)."""
        short, long = plan.seqs[: plan.num_short], plan.seqs[plan.num_short :]
        positions: list[int] = []
        slots: list[int] = []
        logit_rows: list[list[int]] = []
        first, bs = 0, self.block_size
        for item in plan.seqs:
            n = item.rows
            positions += range(item.start, item.start + n)
            slots += [item.block_table[p // bs] * bs + p % bs for p in range(item.start, item.start + n)]
            logit_rows.append(list(range(first + item.num_tokens - 1, first + n)) if item.samples else [])
            first += n
        if self.uses_kernels():
            meta = AttentionMetadata(self._tensor(slots), kernel=self._kernel_meta(plan.seqs))
        else:
            meta = AttentionMetadata(
                self._tensor(slots), self._short_group(short), self._chunks(long, sum(i.rows for i in short))
            )
        return StepInputs(self._input_ids(plan, input_ids), self._tensor(positions), meta, order or [], logit_rows)

    def _input_ids(self, plan: StepPlan, device_ids: torch.Tensor | None) -> torch.Tensor:
        """The step's token ids: `device_ids` for its first `plan.device_rows` rows, then the planned ones."""
        if not plan.device_rows:
            return self._tensor(plan.ids)
        assert device_ids is not None and device_ids.shape[0] == plan.device_rows, "one device id per device row"
        if any(seq.rows != 1 for seq in plan.seqs[: plan.device_rows]):
            raise ValueError("device input ids are for the leading decode rows only")
        return torch.cat([device_ids, self._tensor(plan.ids)]) if plan.ids else device_ids

    def _tensor(self, values: list[int] | list[list[int]]) -> torch.Tensor:
        return to_device(values, torch.long, self.device)

    def _kernel_meta(self, items: list[PlannedSeq]):
        rows = [i.rows for i in items]
        ends = [i.start + n for i, n in zip(items, rows)]
        return kernel_meta(rows, ends, [i.block_table for i in items], self.block_size, self.device)

    def _short_group(self, items: list[PlannedSeq]) -> ShortQueries | None:
        if not items:
            return None
        bs = self.block_size
        lens = [i.rows for i in items]
        ends = [i.start + n for i, n in zip(items, lens)]
        width = -(-max(ends) // bs)
        tables = self._tensor([i.block_table[:width] + [0] * (width - min(width, len(i.block_table))) for i in items])
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

    def _chunks(self, items: list[PlannedSeq], first_row: int) -> list[PrefillChunk]:
        chunks, row = [], first_row
        for item in items:
            n = item.rows
            chunk = PrefillChunk(row, row + n, item.start + n)
            if item.start > 0:  # earlier positions are cached: attend through the block table
                width = -(-chunk.context_len // self.block_size)
                chunk.block_table = self._tensor(item.block_table[:width])
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
        return inputs, self.run_inputs(inputs)

    def run_inputs(self, inputs: StepInputs) -> torch.Tensor | None:
        """The float32 logits of the step's needed rows (None if none is needed)."""
        hidden = self._forward(inputs)
        rows = [r for item_rows in inputs.logit_rows for r in item_rows]
        if not rows:
            return None
        if len(rows) == hidden.shape[0]:
            return self.model.logits(hidden)
        return self.model.logits(hidden.index_select(0, self._tensor(rows)))

    def _forward(self, inputs: StepInputs) -> torch.Tensor:
        tokens = inputs.input_ids.shape[0]
        if self.graphs is not None and self.graphs.accepts(tokens, inputs.meta):
            return self.graphs.run(inputs.input_ids, inputs.positions, inputs.meta)
        if self.step_graphs is not None and self.step_graphs.accepts(tokens, inputs.meta):
            return self.step_graphs.run(inputs.input_ids, inputs.positions, inputs.meta)
        return self.model.forward(inputs.input_ids, inputs.positions, inputs.meta, self.kv_caches)

    def forward_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Logits [batch, seq, vocab] without touching the KV cache (used by `score`)."""
        batch, length = input_ids.shape
        chunks = [PrefillChunk(b * length, (b + 1) * length, length) for b in range(batch)]
        meta = AttentionMetadata(None, None, chunks)
        positions = torch.arange(length, device=self.device).repeat(batch)
        hidden = self.model.forward(input_ids.reshape(-1).to(self.device), positions, meta, self.kv_caches)
        return self.model.logits(hidden).view(batch, length, -1)
