"""Attention over the paged KV cache: torch SDPA (and our CPU decode kernel) on CPU, the Triton
kernels on the GPU.

The flat batch holds first a group of short queries (decodes, speculative verifications) that run
as one batched call, then long prefill chunks, one call each. On a CPU, a group of one-token decodes
runs our kernel (`vireo.kernels.cpu_attention`), which reads keys and values through the block
tables; otherwise keys and values of the short group are gathered from the cache by block table with
one `index_select` per tensor for one SDPA call. A CPU cache may hold float16 (`kv_cache_dtype`): the
kernel reads it as it is, a gather converts it to the query's dtype. When the metadata carries `kernel` inputs (the GPU
path), `kernel_attention` runs instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from vireo.inference.native.models.kernel_attention import KernelAttention, kernel_paged_attention
from vireo.kernels import cpu_attention, cpu_decode_ops


@dataclass
class ShortQueries:
    """Sequences whose few query tokens lead the flat batch, padded to `q_len` each."""

    num_tokens: int
    num_seqs: int
    q_len: int
    block_tables: torch.Tensor  # [seqs, blocks] (padding points at block 0, masked out)
    mask: torch.Tensor  # [seqs, 1, q_len, blocks * block_size], True = may attend
    gather_rows: torch.Tensor | None = None  # [seqs * q_len] flat rows; None when q_len == 1
    valid_rows: torch.Tensor | None = None  # [num_tokens] padded rows that are real
    context_lens: torch.Tensor | None = None  # [seqs] keys each sees, when q_len == 1 (the CPU kernel)


@dataclass
class PrefillChunk:
    """One sequence's chunk of prompt: flat rows [start, end), seeing `context_len` positions."""

    start: int
    end: int
    context_len: int
    block_table: torch.Tensor | None = None  # None: nothing cached before, attend within chunk
    mask: torch.Tensor | None = None  # [chunk, context_len] when part of the context is cached


@dataclass
class AttentionMetadata:
    slot_mapping: torch.Tensor | None  # [tokens] cache slot of each token; None: don't cache
    short: ShortQueries | None = None
    chunks: list[PrefillChunk] = field(default_factory=list)
    kernel: KernelAttention | None = None  # set: the Triton kernels attend over the whole batch


def write_kv(
    k_cache: torch.Tensor, v_cache: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slots: torch.Tensor
) -> None:
    """Store this step's keys/values [tokens, kv_heads, head_dim] at their cache slots."""
    dense_heads = k.stride(1) == k.shape[2] and v.stride(1) == v.shape[2] and v.stride(2) == 1
    stored = k_cache.dtype in (torch.float32, torch.float16)
    if dense_heads and stored and (ops := cpu_decode_ops.for_rows(k)) is not None:
        ops.store_kv(k_cache, v_cache, k, v, slots)  # one call (two index_copy_ are ~6 us each at one token)
        return
    k_cache.view(-1, *k.shape[1:]).index_copy_(0, slots, k.to(k_cache.dtype))
    v_cache.view(-1, *v.shape[1:]).index_copy_(0, slots, v.to(v_cache.dtype))


def _gather(cache: torch.Tensor, block_tables: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[seqs, kv_heads, blocks*block_size, head_dim] view of each sequence's cached tensors, in `dtype`
    (the query's: a float16 cache on a CPU is read back to float32 for SDPA)."""
    seqs, blocks = block_tables.shape
    _, block_size, kv_heads, head_dim = cache.shape
    gathered = cache.index_select(0, block_tables.reshape(-1)).to(dtype)
    return gathered.view(seqs, blocks * block_size, kv_heads, head_dim).transpose(1, 2)


def _short_attention(q: torch.Tensor, k_cache, v_cache, short: ShortQueries) -> torch.Tensor:
    heads, head_dim = q.shape[1:]
    if short.context_lens is not None and cpu_attention.available(q, k_cache):
        out = cpu_attention.decode_attention(
            q[: short.num_tokens], k_cache, v_cache, short.block_tables, short.context_lens
        )
        return out.view(short.num_tokens, heads * head_dim)
    k = _gather(k_cache, short.block_tables, q.dtype)
    v = _gather(v_cache, short.block_tables, q.dtype)
    kv_heads = k.shape[1]
    if short.q_len == 1:  # fold each KV head's query group into the query axis: no GQA expand
        qg = q[: short.num_tokens].view(short.num_seqs, kv_heads, heads // kv_heads, head_dim)
        out = F.scaled_dot_product_attention(qg, k, v, attn_mask=short.mask)
        return out.reshape(short.num_tokens, heads * head_dim)
    assert short.gather_rows is not None and short.valid_rows is not None  # set when q_len > 1
    padded = q.index_select(0, short.gather_rows).view(short.num_seqs, short.q_len, heads, head_dim)
    out = F.scaled_dot_product_attention(padded.transpose(1, 2), k, v, attn_mask=short.mask, enable_gqa=True)
    out = out.transpose(1, 2).reshape(short.num_seqs * short.q_len, heads * head_dim)
    return out.index_select(0, short.valid_rows)


def _chunk_attention(q, k, v, k_cache, v_cache, chunk: PrefillChunk) -> torch.Tensor:
    rows = slice(chunk.start, chunk.end)
    query = q[rows].transpose(0, 1).unsqueeze(0)
    if chunk.block_table is None:
        keys, values = k[rows].transpose(0, 1).unsqueeze(0), v[rows].transpose(0, 1).unsqueeze(0)
        out = F.scaled_dot_product_attention(query, keys, values, is_causal=True, enable_gqa=True)
    else:
        table = chunk.block_table.unsqueeze(0)
        keys = _gather(k_cache, table, q.dtype)[:, :, : chunk.context_len]
        values = _gather(v_cache, table, q.dtype)[:, :, : chunk.context_len]
        out = F.scaled_dot_product_attention(query, keys, values, attn_mask=chunk.mask, enable_gqa=True)
    return out.squeeze(0).transpose(0, 1).reshape(chunk.end - chunk.start, -1)


def paged_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    meta: AttentionMetadata,
) -> torch.Tensor:
    """Causal attention for a flat batch q [tokens, heads, dim]; returns [tokens, heads * dim]."""
    if meta.kernel is not None:
        return kernel_paged_attention(q, k, v, k_cache, v_cache, meta.slot_mapping, meta.kernel)
    if meta.slot_mapping is not None:
        write_kv(k_cache, v_cache, k, v, meta.slot_mapping)
    if meta.short is not None and not meta.chunks:
        return _short_attention(q, k_cache, v_cache, meta.short)
    out = q.new_empty(q.shape[0], q.shape[1] * q.shape[2])
    if meta.short is not None:
        out[: meta.short.num_tokens] = _short_attention(q, k_cache, v_cache, meta.short)
    for chunk in meta.chunks:
        out[chunk.start : chunk.end] = _chunk_attention(q, k, v, k_cache, v_cache, chunk)
    return out
