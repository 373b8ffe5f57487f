"""CUDA graphs of the steps the decode graphs cannot take: everything but attention, per padded token count.

A prefill or mixed step runs eagerly, and on a GPU host its few hundred launches take the host longer than the
GPU takes to run them: a 128-token prefill of a Llama-8B shape on an H100 spent ~24 ms queueing its forward and
0.3 ms waiting for the card (benchmarks/results/gpu/prefill-steps-h100-2026-12-07.json), where a batch-1 decode,
replayed as a graph, takes 5.8 ms. Attention cannot be captured for any step: its grid and tiles follow each
step's sequences and their lengths. So, as vLLM v1 captures its steps piecewise, the forward is cut at attention:
for each padded token count `size`, graph 0 is the embedding and layer 0 up to attention (norm, q/k/v
projection, RoPE, storing k and v in the cache), graph i is layer i-1 after attention (output projection, norm,
MLP) and layer i up to attention, and the last graph is the last layer after attention. Between graphs the
attention kernel runs eagerly on the step's real rows, reading q/k/v from a static buffer and writing its output
into another. A step of n tokens is padded to the smallest size that holds it: padding rows take token 0 at
position 0, store nowhere (slot -1) and are never read back; every row-wise operation keeps them apart from the
real rows.

Only the kernels' path (CUDA; the Triton interpreter in tests, where the pieces run uncaptured) and one device
(no tensor parallelism). `capture()` records every size, largest first, in one memory pool; what passes between
pieces lives in buffers made before capture, so the graphs may replay in any order.
"""

from __future__ import annotations

import torch

from vireo.inference.native.models.attention import AttentionMetadata
from vireo.inference.native.models.kernel_attention import kernel_attend
from vireo.inference.native.models.llama import LlamaModel

# padded token counts: a sixteenth to a quarter of padding at most, sizes multiples of 16 (one Triton specialisation)
STEP_SIZES = (16, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 512, 640, 768, 1024, 1280, 1536, 2048)


def step_sizes(max_tokens: int) -> list[int]:
    """The sizes to capture for steps of up to `max_tokens` tokens (the largest holds them all)."""
    sizes = [s for s in STEP_SIZES if s < max_tokens]
    return sizes + [next((s for s in STEP_SIZES if s >= max_tokens), -(-max_tokens // 16) * 16)]


class PiecewiseGraphs:
    """The pieces of one model's forward between its attention calls, captured per padded token count."""

    def __init__(self, model: LlamaModel, kv_caches: list, max_tokens: int, capture: bool = True):
        self.model, self.kv_caches = model, kv_caches
        self.sizes = step_sizes(max_tokens)
        self.captures = capture  # False: the pieces run as plain calls (tests on the Triton interpreter)
        shape, rows = model.shape, self.sizes[-1]
        device, dtype = kv_caches[0][0].device, model.dtype
        self.input_ids = torch.zeros(rows, dtype=torch.long, device=device)
        self.positions = torch.zeros(rows, dtype=torch.long, device=device)
        self.slots = torch.full((rows,), -1, dtype=torch.long, device=device)
        self.qkv = torch.zeros(rows, (shape.heads + 2 * shape.kv_heads) * shape.head_dim, dtype=dtype, device=device)
        self.attn = torch.zeros(rows, shape.heads * shape.head_dim, dtype=dtype, device=device)
        self.residual = torch.zeros(rows, shape.hidden, dtype=dtype, device=device)
        self.graphs: dict[int, list[torch.cuda.CUDAGraph]] = {}
        self.pool: torch.cuda._POOL_HANDLE | None = None  # graph_pool_handle()'s return type

    def accepts(self, num_tokens: int, meta: AttentionMetadata) -> bool:
        """A step on the kernels' path that a size holds (`ModelRunner` offers pure decodes to the decode graphs
        first)."""
        return meta.kernel is not None and meta.slot_mapping is not None and num_tokens <= self.sizes[-1]

    def size_for(self, num_tokens: int) -> int:
        return next(s for s in self.sizes if s >= num_tokens)

    # --- the pieces (each reads and writes only the buffers above) -----------------------------------
    def _first(self, size: int) -> None:
        self._before(0, self.model.embed_tokens(self.input_ids[:size]), None, size)

    def _middle(self, layer: int, size: int) -> None:
        h, residual = self.model.layers[layer - 1].after_attention(self.attn[:size], self.residual[:size])
        self._before(layer, h, residual, size)

    def _last(self, size: int) -> None:
        h, residual = self.model.layers[-1].after_attention(self.attn[:size], self.residual[:size])
        residual.add_(h)  # (in the buffer: the norms add into the residual stream in place)

    def _before(self, layer: int, h: torch.Tensor, residual: torch.Tensor | None, size: int) -> None:
        model, rows = self.model, slice(0, size)
        qkv, residual = model.layers[layer].before_attention(h, residual, model.rope_inputs(self.positions[rows], h))
        self.qkv[rows].copy_(qkv)
        if residual.data_ptr() != self.residual.data_ptr():  # layer 0's is its embedding; later ones add in place
            self.residual[rows].copy_(residual)
        _, k, v = model.layers[layer].split_heads(self.qkv[rows])
        k_cache, v_cache = self.kv_caches[layer]
        from vireo.kernels.attention import launch_store_kv_cache

        launch_store_kv_cache(k, v, k_cache, v_cache, self.slots[rows])

    def _pieces(self, size: int) -> list:
        layers = len(self.model.layers)
        return [
            lambda: self._first(size),
            *(lambda layer=layer: self._middle(layer, size) for layer in range(1, layers)),
            lambda: self._last(size),
        ]

    # --- capture and run ------------------------------------------------------------------------------
    def capture(self) -> None:
        """Capture every size, largest first, in one memory pool (a few hundred small graphs)."""
        self.pool = torch.cuda.graph_pool_handle()
        for size in reversed(self.sizes):
            pieces = self._pieces(size)
            for piece in pieces:  # compiles the Triton kernels for this shape before capture
                piece()
            torch.cuda.synchronize()
            graphs = []
            for piece in pieces:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=self.pool):
                    piece()
                graphs.append(graph)
            self.graphs[size] = graphs
        torch.cuda.synchronize()

    def run(self, input_ids: torch.Tensor, positions: torch.Tensor, meta: AttentionMetadata) -> torch.Tensor:
        """The step's hidden states [tokens, hidden] (final norm not applied), as `LlamaModel.forward`."""
        if self.captures and not self.graphs:
            self.capture()
        kernel, slot_mapping = meta.kernel, meta.slot_mapping
        assert kernel is not None and slot_mapping is not None  # accepts() said so
        n = input_ids.shape[0]
        size = self.size_for(n)
        self.input_ids[:n].copy_(input_ids)
        self.input_ids[n:size].zero_()
        self.positions[:n].copy_(positions)
        self.positions[n:size].zero_()
        self.slots[:n].copy_(slot_mapping)
        self.slots[n:size].fill_(-1)  # padding rows store nowhere
        pieces = self.graphs[size] if self.captures else self._pieces(size)
        for layer, piece in enumerate(pieces):
            piece.replay() if self.captures else piece()
            if layer < len(self.model.layers):
                q, k, v = self.model.layers[layer].split_heads(self.qkv[:n])
                k_cache, v_cache = self.kv_caches[layer]
                kernel_attend(q, k, v, k_cache, v_cache, kernel, out=self.attn[:n])
        return self.residual[:n]
