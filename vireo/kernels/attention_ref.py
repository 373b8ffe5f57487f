"""Torch references for paged attention: gather each sequence's keys, then SDPA in float32.

These are the CPU path of `vireo.kernels.attention` and the yardstick its kernels are tested on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gather_kv(cache: torch.Tensor, block_table: torch.Tensor, length: int) -> torch.Tensor:
    """The first `length` cached tokens of one sequence: [length, kv_heads, head_dim]."""
    block_size = cache.shape[1]
    blocks = block_table[: -(-length // block_size)].long()
    return cache[blocks].flatten(0, 1)[:length]


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Causal GQA attention of the last q_len positions of k/v; q [q_len, H, D] -> same."""
    q_len, heads, _ = q.shape
    ctx = k.shape[0]
    groups = heads // k.shape[1]
    compute = torch.promote_types(q.dtype, torch.float32)
    k = k.repeat_interleave(groups, dim=1).transpose(0, 1).to(compute)
    v = v.repeat_interleave(groups, dim=1).transpose(0, 1).to(compute)
    q_pos = torch.arange(ctx - q_len, ctx, device=q.device)
    visible = torch.arange(ctx, device=q.device)[None, :] <= q_pos[:, None]
    out = F.scaled_dot_product_attention(q.transpose(0, 1).to(compute), k, v, attn_mask=visible, scale=scale)
    return out.transpose(0, 1).to(q.dtype)


def prefill_attention_reference(
    q, k_cache, v_cache, block_tables, cu_seqlens_q, context_lens, scale: float
) -> torch.Tensor:
    """Reference for `prefill_attention`: one SDPA call per sequence."""
    out = torch.empty_like(q)
    bounds = cu_seqlens_q.tolist()
    for b, ctx in enumerate(context_lens.tolist()):
        lo, hi = bounds[b], bounds[b + 1]
        if hi == lo:
            continue
        k = gather_kv(k_cache, block_tables[b], ctx)
        v = gather_kv(v_cache, block_tables[b], ctx)
        out[lo:hi] = _attend(q[lo:hi], k, v, scale)
    return out


def decode_attention_reference(q, k_cache, v_cache, block_tables, context_lens, scale: float) -> torch.Tensor:
    """Reference for `decode_attention`: q [B, H, D] attends to all context_lens[b] tokens."""
    out = torch.empty_like(q)
    for b, ctx in enumerate(context_lens.tolist()):
        k = gather_kv(k_cache, block_tables[b], ctx)
        v = gather_kv(v_cache, block_tables[b], ctx)
        out[b] = _attend(q[b : b + 1], k, v, scale)[0]
    return out


def contiguous_prefill_reference(q, k, v, cu_seqlens, scale: float) -> torch.Tensor:
    """Reference for `flash_prefill`: fresh prompts, q [T, H, D] over k, v [T, KVH, D] rows."""
    out = torch.empty_like(q)
    bounds = cu_seqlens.tolist()
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        if hi > lo:
            out[lo:hi] = _attend(q[lo:hi], k[lo:hi], v[lo:hi], scale)
    return out
