"""Decode attention on the CPU straight from the paged KV cache (our AVX2 kernel,
`csrc/cpu_paged_attention.cpp`): one query token per sequence, each (sequence, KV head) reading its
keys and values through the block table for every query head of its group, with no gathered copy of
the cache, float32 or float16 (read 8 values a load with F16C). Where `available` is False (turned off,
no AVX2, no compiler, a query not float32) the engine keeps
its gather + SDPA path; `reference` is that computation, for tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vireo.kernels import cpu_extensions


def available(q: torch.Tensor, k_cache: torch.Tensor) -> bool:
    """Whether the kernel can run this step: a CPU float32 query, a float32 or float16 cache, the extension
    built."""
    return (
        q.device.type == "cpu"
        and q.dtype == torch.float32
        and k_cache.dtype in (torch.float32, torch.float16)
        and cpu_extensions.load("cpu_paged_attention") is not None
    )


def decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float | None = None,
) -> torch.Tensor:
    """q [S, H, D] (one token per sequence), caches [blocks, block_size, KVH, D], block_tables [S, W],
    context_lens [S] (keys 0..len-1 attended) -> [S, H, D]."""
    kernel = cpu_extensions.load("cpu_paged_attention")
    assert kernel is not None, "the CPU attention kernel is not built here"
    return kernel.decode_attention(
        q, k_cache, v_cache, block_tables, context_lens, scale if scale is not None else q.shape[-1] ** -0.5
    )


def reference(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
) -> torch.Tensor:
    """The same attention by gathering each sequence's keys and values and calling SDPA."""
    seqs, heads, dim = q.shape
    _, block_size, kv_heads, _ = k_cache.shape
    out = torch.empty_like(q)
    for s in range(seqs):
        n = int(context_lens[s])
        table = block_tables[s]
        k = k_cache.index_select(0, table).reshape(-1, kv_heads, dim)[:n].transpose(0, 1).to(q.dtype)
        v = v_cache.index_select(0, table).reshape(-1, kv_heads, dim)[:n].transpose(0, 1).to(q.dtype)
        out[s] = F.scaled_dot_product_attention(q[s].unsqueeze(1), k, v, enable_gqa=True).squeeze(1)
    return out
