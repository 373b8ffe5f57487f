"""Attention over a paged KV cache: flash-attention prefill and flash-decoding (Triton + dispatch).

The cache is two tensors [num_blocks, block_size, kv_heads, head_dim]; `block_tables[b, i]` is
the physical block holding tokens i*block_size .. of sequence b, so prefix-cached blocks shared
between sequences are read in place. Query heads h use KV head h // (heads // kv_heads) (GQA).
CPU tensors run the torch references in `vireo.kernels.attention_ref`.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from vireo.kernels.attention_ref import decode_attention_reference, prefill_attention_reference
from vireo.kernels.dispatch import dot_dtype, use_triton
from vireo.kernels.tuning import kernel_table

LOG2E = 1.4426950408889634


@triton.jit
def _kv_tile(
    cache_ptr,
    bt_row_ptr,
    start_n,
    offs_n,
    offs_d,
    kvh,
    end,
    stride_b,
    stride_t,
    stride_h,
    D: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    TILE_IN_BLOCK: tl.constexpr,
    MASK_N: tl.constexpr,
    EVEN_D: tl.constexpr,
):
    """Load keys (or values) start_n + offs_n of one KV head, through the block table."""
    pos = start_n + offs_n
    if TILE_IN_BLOCK:  # the whole tile lies in one cache block: one table read, contiguous rows
        phys = tl.load(bt_row_ptr + start_n // BLOCK_SIZE).to(tl.int64)
        rows = phys * stride_b + (start_n % BLOCK_SIZE + offs_n) * stride_t
    elif MASK_N:
        phys = tl.load(bt_row_ptr + pos // BLOCK_SIZE, mask=pos < end, other=0).to(tl.int64)
        rows = phys * stride_b + (pos % BLOCK_SIZE) * stride_t
    else:
        phys = tl.load(bt_row_ptr + pos // BLOCK_SIZE).to(tl.int64)
        rows = phys * stride_b + (pos % BLOCK_SIZE) * stride_t
    ptrs = cache_ptr + rows[:, None] + kvh * stride_h + offs_d[None, :]
    if MASK_N:
        if EVEN_D:
            tile = tl.load(ptrs, mask=pos[:, None] < end, other=0.0)
        else:
            tile = tl.load(ptrs, mask=(pos[:, None] < end) & (offs_d[None, :] < D), other=0.0)
    elif EVEN_D:
        tile = tl.load(ptrs)
    else:
        tile = tl.load(ptrs, mask=offs_d[None, :] < D, other=0.0)
    return tile


@triton.jit
def _attend_tile(
    acc,
    m_i,
    l_i,
    q,
    q_pos,
    k_ptr,
    v_ptr,
    bt_row,
    start_n,
    offs_n,
    offs_d,
    kvh,
    end,
    stride_kb,
    stride_kt,
    stride_kh,
    stride_vb,
    stride_vt,
    stride_vh,
    D: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    TILE_IN_BLOCK: tl.constexpr,
    MASKED: tl.constexpr,
    EVEN_D: tl.constexpr,
    DOT: tl.constexpr,
):
    """One step of the online softmax over a tile of keys (log2 domain; q is pre-scaled).

    MASKED tiles may end past the context or cross the causal diagonal; others need no mask.
    """
    k = _kv_tile(
        k_ptr,
        bt_row,
        start_n,
        offs_n,
        offs_d,
        kvh,
        end,
        stride_kb,
        stride_kt,
        stride_kh,
        D,
        BLOCK_SIZE,
        TILE_IN_BLOCK,
        MASKED,
        EVEN_D,
    )
    s = tl.dot(q, tl.trans(k.to(DOT)))
    if MASKED:
        k_pos = start_n + offs_n
        visible = (k_pos[None, :] < end) & (k_pos[None, :] <= q_pos[:, None])
        s = tl.where(visible, s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1))
    p = tl.exp2(s - m_new[:, None])
    alpha = tl.exp2(m_i - m_new)
    v = _kv_tile(
        v_ptr,
        bt_row,
        start_n,
        offs_n,
        offs_d,
        kvh,
        end,
        stride_vb,
        stride_vt,
        stride_vh,
        D,
        BLOCK_SIZE,
        TILE_IN_BLOCK,
        MASKED,
        EVEN_D,
    )
    acc = acc * alpha[:, None] + tl.dot(p.to(DOT), v.to(DOT))
    return acc, m_new, l_i * alpha + tl.sum(p, 1)


# the block table's row stride is its width, the longest context's blocks: a value of 1 or a multiple of 16 would
# each make a kernel variant of its own, compiled inside whichever served step first met it (about a second)
@triton.jit(do_not_specialize=["stride_bt"])
def _prefill_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    out_ptr,
    bt_ptr,
    cu_q_ptr,
    ctx_ptr,
    qk_scale,
    stride_qt,
    stride_qh,
    stride_ot,
    stride_oh,
    stride_kb,
    stride_kt,
    stride_kh,
    stride_vb,
    stride_vt,
    stride_vh,
    stride_bt,
    GROUPS: tl.constexpr,
    D: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    TILE_IN_BLOCK: tl.constexpr,
    DOT: tl.constexpr,
):
    # heavy (late, long-causal) query blocks first, for a better tail
    m_block = tl.num_programs(0) - 1 - tl.program_id(0)
    h, b = tl.program_id(1), tl.program_id(2)
    q_start = tl.load(cu_q_ptr + b)
    q_len = tl.load(cu_q_ptr + b + 1) - q_start
    if m_block * BLOCK_M < q_len:
        ctx = tl.load(ctx_ptr + b)
        first_pos = ctx - q_len  # queries are the last q_len tokens of the context
        kvh = h // GROUPS
        offs_m = m_block * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = tl.arange(0, BLOCK_N)
        offs_d = tl.arange(0, BLOCK_D)
        q = tl.load(
            q_ptr + (q_start + offs_m)[:, None] * stride_qt + h * stride_qh + offs_d[None, :],
            mask=(offs_m[:, None] < q_len) & (offs_d[None, :] < D),
            other=0.0,
        )
        q = (q.to(tl.float32) * qk_scale).to(DOT)  # scale (and log2 e) folded into q once
        q_pos = first_pos + offs_m
        m_i = tl.full((BLOCK_M,), float("-inf"), tl.float32)
        l_i = tl.zeros((BLOCK_M,), tl.float32)
        acc = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
        bt_row = bt_ptr + b * stride_bt
        # keys before the block's first query are visible to all its rows: no causal mask
        unmasked_end = ((first_pos + m_block * BLOCK_M) // BLOCK_N) * BLOCK_N
        for start_n in range(0, unmasked_end, BLOCK_N):
            acc, m_i, l_i = _attend_tile(
                acc,
                m_i,
                l_i,
                q,
                q_pos,
                k_ptr,
                v_ptr,
                bt_row,
                start_n,
                offs_n,
                offs_d,
                kvh,
                ctx,
                stride_kb,
                stride_kt,
                stride_kh,
                stride_vb,
                stride_vt,
                stride_vh,
                D,
                BLOCK_SIZE,
                TILE_IN_BLOCK,
                False,
                BLOCK_D == D,
                DOT,
            )
        causal_end = tl.minimum(ctx, first_pos + (m_block + 1) * BLOCK_M)
        for start_n in range(unmasked_end, causal_end, BLOCK_N):
            acc, m_i, l_i = _attend_tile(
                acc,
                m_i,
                l_i,
                q,
                q_pos,
                k_ptr,
                v_ptr,
                bt_row,
                start_n,
                offs_n,
                offs_d,
                kvh,
                ctx,
                stride_kb,
                stride_kt,
                stride_kh,
                stride_vb,
                stride_vt,
                stride_vh,
                D,
                BLOCK_SIZE,
                TILE_IN_BLOCK,
                True,
                BLOCK_D == D,
                DOT,
            )
        out = acc / l_i[:, None]
        tl.store(
            out_ptr + (q_start + offs_m)[:, None] * stride_ot + h * stride_oh + offs_d[None, :],
            out.to(out_ptr.dtype.element_ty),
            mask=(offs_m[:, None] < q_len) & (offs_d[None, :] < D),
        )


# the block table's row stride is its width, the longest context's blocks: a value of 1 or a multiple of 16 would
# each make a kernel variant of its own, compiled inside whichever served step first met it (about a second)
@triton.jit(do_not_specialize=["stride_bt"])
def _decode_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    out_ptr,
    part_o_ptr,
    part_lse_ptr,
    bt_ptr,
    ctx_ptr,
    qk_scale,
    stride_qb,
    stride_qh,
    stride_ob,
    stride_oh,
    stride_kb,
    stride_kt,
    stride_kh,
    stride_vb,
    stride_vt,
    stride_vh,
    stride_bt,
    GROUPS: tl.constexpr,
    D: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    BLOCK_G: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    TILE_IN_BLOCK: tl.constexpr,
    SPLITS: tl.constexpr,
    DOT: tl.constexpr,
):
    b, kvh, split = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    ctx = tl.load(ctx_ptr + b)
    # the splits share this sequence's own context, not the bound the launch was sized for: a
    # short context inside a CUDA graph captured for a long one still spreads over the programs
    chunk = tl.cdiv(tl.cdiv(ctx, SPLITS), BLOCK_N) * BLOCK_N
    start = split * chunk
    end = tl.maximum(tl.minimum(start + chunk, ctx), start)  # an empty split stays empty
    offs_g = tl.arange(0, BLOCK_G)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    heads = kvh * GROUPS + offs_g  # all query heads sharing this KV head: K/V read once
    gd_mask = (offs_g[:, None] < GROUPS) & (offs_d[None, :] < D)
    q = tl.load(q_ptr + b * stride_qb + heads[:, None] * stride_qh + offs_d[None, :], mask=gd_mask, other=0.0)
    q = (q.to(tl.float32) * qk_scale).to(DOT)
    m_i = tl.full((BLOCK_G,), float("-inf"), tl.float32)
    l_i = tl.zeros((BLOCK_G,), tl.float32)
    acc = tl.zeros((BLOCK_G, BLOCK_D), tl.float32)
    bt_row = bt_ptr + b * stride_bt
    # every key of the split is visible to the one query; only the last tile may overhang
    full_end = start + ((end - start) // BLOCK_N) * BLOCK_N
    for start_n in range(start, full_end, BLOCK_N):
        acc, m_i, l_i = _attend_tile(
            acc,
            m_i,
            l_i,
            q,
            offs_g,
            k_ptr,
            v_ptr,
            bt_row,
            start_n,
            offs_n,
            offs_d,
            kvh,
            end,
            stride_kb,
            stride_kt,
            stride_kh,
            stride_vb,
            stride_vt,
            stride_vh,
            D,
            BLOCK_SIZE,
            TILE_IN_BLOCK,
            False,
            BLOCK_D == D,
            DOT,
        )
    if full_end < end:
        acc, m_i, l_i = _attend_tile(
            acc,
            m_i,
            l_i,
            q,
            end + offs_g,
            k_ptr,
            v_ptr,
            bt_row,
            full_end,
            offs_n,
            offs_d,
            kvh,
            end,
            stride_kb,
            stride_kt,
            stride_kh,
            stride_vb,
            stride_vt,
            stride_vh,
            D,
            BLOCK_SIZE,
            TILE_IN_BLOCK,
            True,
            BLOCK_D == D,
            DOT,
        )
    if SPLITS == 1:
        tl.store(
            out_ptr + b * stride_ob + heads[:, None] * stride_oh + offs_d[None, :],
            (acc / l_i[:, None]).to(out_ptr.dtype.element_ty),
            mask=gd_mask,
        )
    else:  # partials [B, H, SPLITS, BLOCK_D] and log2-sum-exp [B, H, SPLITS]; empty splits: -inf
        row = (b * tl.num_programs(1) * GROUPS + heads) * SPLITS + split
        tl.store(
            part_o_ptr + row[:, None] * BLOCK_D + offs_d[None, :],
            acc / tl.maximum(l_i, 1e-30)[:, None],
            mask=offs_g[:, None] < GROUPS,
        )
        tl.store(part_lse_ptr + row, m_i + tl.log2(tl.maximum(l_i, 1e-30)), mask=offs_g < GROUPS)


@triton.jit
def _decode_reduce_kernel(
    part_o_ptr,
    part_lse_ptr,
    out_ptr,
    H,
    stride_ob,
    stride_oh,
    D: tl.constexpr,
    SPLITS: tl.constexpr,
    BLOCK_S: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    b, h = tl.program_id(0), tl.program_id(1)
    offs_s = tl.arange(0, BLOCK_S)
    offs_d = tl.arange(0, BLOCK_D)
    row = (b * H + h) * SPLITS + offs_s
    lse = tl.load(part_lse_ptr + row, mask=offs_s < SPLITS, other=float("-inf"))
    weight = tl.exp2(lse - tl.max(lse, 0))
    parts = tl.load(part_o_ptr + row[:, None] * BLOCK_D + offs_d[None, :], mask=offs_s[:, None] < SPLITS, other=0.0)
    out = tl.sum(parts * weight[:, None], 0) / tl.sum(weight, 0)
    tl.store(out_ptr + b * stride_ob + h * stride_oh + offs_d, out.to(out_ptr.dtype.element_ty), mask=offs_d < D)


def _cache_strides(cache: torch.Tensor) -> tuple[int, int, int]:
    if cache.stride(-1) != 1:
        raise ValueError("KV cache must be contiguous in head_dim")
    return cache.stride(0), cache.stride(1), cache.stride(2)


def _tile_in_block(block_size: int, block_n: int) -> bool:
    return block_size % block_n == 0


def prefill_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    context_lens: torch.Tensor,
    max_q_len: int,
    scale: float | None = None,
    out: torch.Tensor | None = None,
    block_m: int = 128,
    block_n: int = 128,
    num_warps: int = 8,
    num_stages: int = 3,
) -> torch.Tensor:
    """Causal attention of packed queries q [T, H, D] over the paged cache (prefix included).

    Sequence b's queries are q[cu_seqlens_q[b]:cu_seqlens_q[b+1]], the last tokens of its
    context_lens[b] cached tokens (their K/V must already be in the cache). Returns [T, H, D].
    """
    scale = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    if not use_triton(q):
        result = prefill_attention_reference(q, k_cache, v_cache, block_tables, cu_seqlens_q, context_lens, scale)
        return result if out is None else out.copy_(result)
    return launch_prefill_attention(
        q,
        k_cache,
        v_cache,
        block_tables,
        cu_seqlens_q,
        context_lens,
        max_q_len,
        scale,
        out,
        block_m,
        block_n,
        num_warps,
        num_stages,
    )


def launch_prefill_attention(
    q,
    k_cache,
    v_cache,
    block_tables,
    cu_seqlens_q,
    context_lens,
    max_q_len: int,
    scale: float | None = None,
    out=None,
    block_m: int = 128,
    block_n: int = 128,
    num_warps: int = 8,
    num_stages: int = 3,
) -> torch.Tensor:
    """The Triton path of `prefill_attention`, for callers that already chose it."""
    scale = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    out = torch.empty_like(q) if out is None else out
    _, heads, head_dim = q.shape
    batch = block_tables.shape[0]
    block_size = k_cache.shape[1]
    grid = (triton.cdiv(max_q_len, block_m), heads, batch)
    _prefill_kernel[grid](
        q,
        k_cache,
        v_cache,
        out,
        block_tables,
        cu_seqlens_q,
        context_lens,
        scale * LOG2E,
        q.stride(0),
        q.stride(1),
        out.stride(0),
        out.stride(1),
        *_cache_strides(k_cache),
        *_cache_strides(v_cache),
        block_tables.stride(0),
        GROUPS=heads // k_cache.shape[2],
        D=head_dim,
        BLOCK_SIZE=block_size,
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        BLOCK_D=triton.next_power_of_2(head_dim),
        TILE_IN_BLOCK=_tile_in_block(block_size, block_n),
        DOT=dot_dtype(q.dtype, q.device),
        num_warps=num_warps,
        num_stages=num_stages,
    )
    return out


def decode_splits(batch: int, kv_heads: int, max_context: int, block_n: int, device: torch.device) -> int:
    """How many programs share one sequence's keys: enough for the device's target (about two
    waves of its SMs), at most one per key tile of the longest context (each sequence divides
    its own keys among them)."""
    t = kernel_table(device)["decode_attention"]
    programs = batch * kv_heads
    tiles = triton.cdiv(max_context, block_n)
    return max(1, min(triton.cdiv(t["split_target_programs"], programs), tiles, t["split_max"]))


def decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    max_context: int,
    scale: float | None = None,
    out: torch.Tensor | None = None,
    splits: int | None = None,
    block_n: int = 64,
    num_warps: int = 4,
    num_stages: int = 3,
) -> torch.Tensor:
    """One new query per sequence, q [B, H, D], over context_lens[b] cached tokens -> [B, H, D].

    Flash-decoding: each (sequence, KV head) is split into `splits` key ranges computed in
    parallel, then merged by their log-sum-exp.
    """
    scale = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    if not use_triton(q):
        result = decode_attention_reference(q, k_cache, v_cache, block_tables, context_lens, scale)
        return result if out is None else out.copy_(result)
    return launch_decode_attention(
        q, k_cache, v_cache, block_tables, context_lens, max_context, scale, out, splits, block_n, num_warps, num_stages
    )


def launch_decode_attention(
    q,
    k_cache,
    v_cache,
    block_tables,
    context_lens,
    max_context: int,
    scale: float | None = None,
    out=None,
    splits: int | None = None,
    block_n: int = 64,
    num_warps: int = 4,
    num_stages: int = 3,
) -> torch.Tensor:
    """The Triton path of `decode_attention`, for callers that already chose it."""
    scale = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    out = torch.empty_like(q) if out is None else out
    batch, heads, head_dim = q.shape
    kv_heads, block_size = k_cache.shape[2], k_cache.shape[1]
    splits = splits or decode_splits(batch, kv_heads, max_context, block_n, q.device)
    block_d = triton.next_power_of_2(head_dim)
    part_o = torch.empty(batch, heads, splits, block_d, dtype=torch.float32, device=q.device)
    part_lse = torch.empty(batch, heads, splits, dtype=torch.float32, device=q.device)
    groups = heads // kv_heads
    _decode_kernel[(batch, kv_heads, splits)](
        q,
        k_cache,
        v_cache,
        out,
        part_o,
        part_lse,
        block_tables,
        context_lens,
        scale * LOG2E,
        q.stride(0),
        q.stride(1),
        out.stride(0),
        out.stride(1),
        *_cache_strides(k_cache),
        *_cache_strides(v_cache),
        block_tables.stride(0),
        GROUPS=groups,
        D=head_dim,
        BLOCK_SIZE=block_size,
        BLOCK_G=max(16, triton.next_power_of_2(groups)),
        BLOCK_N=block_n,
        BLOCK_D=block_d,
        TILE_IN_BLOCK=_tile_in_block(block_size, block_n),
        SPLITS=splits,
        DOT=dot_dtype(q.dtype, q.device),
        num_warps=num_warps,
        num_stages=num_stages,
    )
    if splits > 1:
        _decode_reduce_kernel[(batch, heads)](
            part_o,
            part_lse,
            out,
            heads,
            out.stride(0),
            out.stride(1),
            D=head_dim,
            SPLITS=splits,
            BLOCK_S=triton.next_power_of_2(splits),
            BLOCK_D=block_d,
        )
    return out


@triton.jit
def _store_kv_kernel(
    k_ptr,
    v_ptr,
    k_cache_ptr,
    v_cache_ptr,
    slot_ptr,
    stride_kt,
    stride_vt,
    stride_ckb,
    stride_ckt,
    stride_cvb,
    stride_cvt,
    ROW: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    t = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    slot = tl.load(slot_ptr + t).to(tl.int64)
    if slot >= 0:  # negative slots mark padding tokens
        block, offset = slot // BLOCK_SIZE, slot % BLOCK_SIZE
        mask = cols < ROW
        k = tl.load(k_ptr + t * stride_kt + cols, mask=mask)
        v = tl.load(v_ptr + t * stride_vt + cols, mask=mask)
        tl.store(k_cache_ptr + block * stride_ckb + offset * stride_ckt + cols, k, mask=mask)
        tl.store(v_cache_ptr + block * stride_cvb + offset * stride_cvt + cols, v, mask=mask)


def store_kv_cache(
    k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, slot_mapping: torch.Tensor
) -> None:
    """Write new keys/values k, v [T, kv_heads, D] to cache slots (block * block_size + offset).

    Slots < 0 are skipped. Each token's [kv_heads, D] must be contiguous in k, v and the cache.
    """
    if not use_triton(k):
        keep = slot_mapping >= 0
        slots = slot_mapping[keep].long()
        k_cache.view(-1, *k_cache.shape[2:])[slots] = k[keep].to(k_cache.dtype)
        v_cache.view(-1, *v_cache.shape[2:])[slots] = v[keep].to(v_cache.dtype)
        return
    launch_store_kv_cache(k, v, k_cache, v_cache, slot_mapping)


def launch_store_kv_cache(k, v, k_cache, v_cache, slot_mapping) -> None:
    """The Triton path of `store_kv_cache`, for callers that already chose it."""
    tokens = k.shape[0]
    row = k.shape[1] * k.shape[2]
    block = min(triton.next_power_of_2(row), 2048)
    _store_kv_kernel[(tokens, triton.cdiv(row, block))](
        k,
        v,
        k_cache,
        v_cache,
        slot_mapping,
        k.stride(0),
        v.stride(0),
        k_cache.stride(0),
        k_cache.stride(1),
        v_cache.stride(0),
        v_cache.stride(1),
        ROW=row,
        BLOCK_SIZE=k_cache.shape[1],
        BLOCK=block,
    )
