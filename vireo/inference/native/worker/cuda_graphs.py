"""CUDA graphs of the decode forward, one per padded batch size (1, 2, 4, 8, 16, 32, ...).

A decode step launches a few hundred small kernels; replaying a captured graph removes their
launch cost. Each graph reads static buffers (token ids, positions, KV slots, block tables,
context lengths) that `run` fills before the replay; a batch is padded up to the next captured
size with rows that write no KV slot (slot -1) and attend to one cached token. Prefill, mixed and
speculative steps, and batches above the largest size, run eagerly.
"""

from __future__ import annotations

import torch

from vireo.inference.native.models.attention import AttentionMetadata
from vireo.inference.native.models.kernel_attention import KernelAttention

GRAPH_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def graph_batch_sizes(max_batch: int) -> list[int]:
    """Sizes to capture: powers of two below `max_batch`, then `max_batch` itself."""
    return [s for s in GRAPH_BATCH_SIZES if s < max_batch] + [max_batch]


def padded_batch_size(batch: int, sizes: list[int]) -> int | None:
    """The smallest captured size that holds `batch` rows, or None (run eagerly)."""
    return next((s for s in sizes if s >= batch), None)


class DecodeGraphs:
    """Captured decode forwards of one model over one KV cache, with their input buffers."""

    def __init__(self, model, kv_caches: list, max_batch: int, max_context: int, block_size: int):
        self.model, self.kv_caches = model, kv_caches
        self.sizes = graph_batch_sizes(max_batch)
        self.width = -(-max_context // block_size)
        self.max_context = self.width * block_size
        device = kv_caches[0][0].device
        rows = self.sizes[-1]
        self.input_ids = torch.zeros(rows, dtype=torch.long, device=device)
        self.positions = torch.zeros(rows, dtype=torch.long, device=device)
        self.slots = torch.full((rows,), -1, dtype=torch.long, device=device)
        self.block_tables = torch.zeros(rows, self.width, dtype=torch.int32, device=device)
        self.context_lens = torch.ones(rows, dtype=torch.int32, device=device)
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self.outputs: dict[int, torch.Tensor] = {}
        self.pool: torch.cuda._POOL_HANDLE | None = None  # graph_pool_handle()'s return type

    def accepts(self, num_tokens: int, meta: AttentionMetadata) -> bool:
        """A pure decode batch (one query per sequence) that a captured size holds."""
        kernel = meta.kernel
        return (
            kernel is not None
            and kernel.cu_seqlens_q is None
            and meta.slot_mapping is not None
            and padded_batch_size(num_tokens, self.sizes) is not None
            and kernel.block_tables.shape[1] <= self.width
        )

    def capture(self) -> None:
        """Capture every size, largest first, sharing one memory pool."""
        self.pool = torch.cuda.graph_pool_handle()
        for size in reversed(self.sizes):
            self._forward(size)  # compiles the Triton kernels for this shape before capture
            torch.cuda.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool):
                self.outputs[size] = self._forward(size)
            self.graphs[size] = graph
        torch.cuda.synchronize()

    def _forward(self, size: int) -> torch.Tensor:
        kernel = KernelAttention(self.block_tables[:size], self.context_lens[:size], self.max_context)
        meta = AttentionMetadata(self.slots[:size], kernel=kernel)
        return self.model.forward(self.input_ids[:size], self.positions[:size], meta, self.kv_caches)

    def run(self, input_ids: torch.Tensor, positions: torch.Tensor, meta: AttentionMetadata) -> torch.Tensor:
        """Fill the buffers, replay the graph of the padded size; hidden states [batch, hidden]."""
        if not self.graphs:
            self.capture()
        kernel, slot_mapping = meta.kernel, meta.slot_mapping
        n = input_ids.shape[0]
        size = padded_batch_size(n, self.sizes)
        assert kernel is not None and slot_mapping is not None and size is not None  # accepts() said so
        tables = kernel.block_tables
        self.input_ids[:n].copy_(input_ids)
        self.positions[:n].copy_(positions)
        self.slots[:n].copy_(slot_mapping)
        self.slots[n:size].fill_(-1)  # padding rows write nowhere
        self.block_tables[:n, : tables.shape[1]].copy_(tables)
        self.context_lens[:n].copy_(kernel.context_lens)
        self.context_lens[n:size].fill_(1)
        self.graphs[size].replay()
        return self.outputs[size][:n]
