"""Causal flash-attention prefill over contiguous K/V: fresh prompts with no cached prefix.

When every sequence of a batch starts at position 0, its keys and values are exactly this step's
k, v [T, kv_heads, D] (packed like q [T, heads, D], rows cu_seqlens[b]:cu_seqlens[b+1]), so the
kernel reads them in place with plain pointer arithmetic instead of through the paged cache's
block table (`vireo.kernels.attention.prefill_attention`, which stays for chunks after a prefix).

Structure (FlashAttention-2, as in Triton's fused-attention tutorial): one program per
(query block, head, sequence), its Q tile kept in registers, pre-scaled by softmax scale * log2 e
so the online softmax runs on exp2; keys before the block's first query need no mask (first
phase, no load masks either), the diagonal keys are masked (second phase); query heads h read KV
head h // groups (GQA). Heavy (late) query blocks are launched first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from vireo.kernels.attention_ref import contiguous_prefill_reference
from vireo.kernels.dispatch import dot_dtype, use_triton
from vireo.kernels.tuning import kernel_table, pick

LOG2E = 1.4426950408889634
OFFSET32_LIMIT = 2**31  # row offsets inside a sequence switch to int64 from here


@dataclass(frozen=True)
class FlashConfig:
    """Tile of the contiguous prefill kernel. block_m must be a multiple of block_n. `tma`: load
    Q, K, V through tensor descriptors (the Hopper bulk-copy engine; head_dim a power of two)."""

    block_m: int = 128
    block_n: int = 128
    num_warps: int = 8
    num_stages: int = 3
    tma: bool = False


def pick_flash_config(max_q_len: int, head_dim: int, device: torch.device) -> FlashConfig:
    """Tiles by query length and head size from the device's tuned table: short runs waste less
    of a small tile; large head dims need smaller tiles."""
    return FlashConfig(**pick(kernel_table(device)["flash_prefill"], q_len=max_q_len, head_dim=head_dim))


@triton.jit
def _softmax_step(acc, m_i, l_i, s, v, offs_m, start_n, offs_n, MASKED: tl.constexpr, DOT: tl.constexpr):
    """Fold scores s [BLOCK_M, BLOCK_N] (log2 domain) and values v into the running softmax."""
    if MASKED:  # diagonal tile: key positions after the query are hidden
        s = tl.where((start_n + offs_n)[None, :] <= offs_m[:, None], s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1))
    p = tl.exp2(s - m_new[:, None])
    alpha = tl.exp2(m_i - m_new)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = tl.dot(p.to(DOT), v, acc * alpha[:, None])
    return acc, m_new, l_i


@triton.jit
def _load_kv(
    base,
    start_n,
    offs_n,
    offs_d,
    stride_t,
    seq_len,
    D: tl.constexpr,
    MASK_N: tl.constexpr,
    EVEN_D: tl.constexpr,
    OFF64: tl.constexpr,
):
    """Rows start_n + offs_n of one head's keys (or values); `base` points at the sequence's row 0.

    The pointers are rebuilt from the loop index each tile: carrying a [BLOCK_N, BLOCK_D] pointer
    tensor across iterations keeps 64-bit addresses for every element in registers, which spill
    (measured: `benchmarks/results/gpu/kernels-h200-notes.md`).
    """
    pos = start_n + offs_n
    if OFF64:
        pos = pos.to(tl.int64)
    ptrs = base + pos[:, None] * stride_t + offs_d[None, :]
    if MASK_N:
        if EVEN_D:
            return tl.load(ptrs, mask=pos[:, None] < seq_len, other=0.0)
        return tl.load(ptrs, mask=(pos[:, None] < seq_len) & (offs_d[None, :] < D), other=0.0)
    if EVEN_D:
        return tl.load(ptrs)
    return tl.load(ptrs, mask=offs_d[None, :] < D, other=0.0)


@triton.jit
def _unmasked_tile(
    acc,
    m_i,
    l_i,
    q,
    k_base,
    v_base,
    start_n,
    offs_m,
    offs_n,
    offs_d,
    stride_kt,
    stride_vt,
    seq_len,
    D: tl.constexpr,
    EVEN_D: tl.constexpr,
    OFF64: tl.constexpr,
    DOT: tl.constexpr,
):
    """One key tile before the diagonal: every key visible to every row, no masks."""
    k = _load_kv(k_base, start_n, offs_n, offs_d, stride_kt, seq_len, D, False, EVEN_D, OFF64)
    s = tl.dot(q, tl.trans(k.to(DOT)))
    v = _load_kv(v_base, start_n, offs_n, offs_d, stride_vt, seq_len, D, False, EVEN_D, OFF64)
    return _softmax_step(acc, m_i, l_i, s, v.to(DOT), offs_m, start_n, offs_n, False, DOT)


@triton.jit
def _flash_prefill_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    out_ptr,
    cu_ptr,
    qk_scale,
    stride_qt,
    stride_qh,
    stride_kt,
    stride_kh,
    stride_vt,
    stride_vh,
    stride_ot,
    stride_oh,
    GROUPS: tl.constexpr,
    D: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    OFF64: tl.constexpr,
    DOT: tl.constexpr,
):
    m_block = tl.num_programs(0) - 1 - tl.program_id(0)  # heavy (late) query blocks first
    h, b = tl.program_id(1), tl.program_id(2)
    seq_start = tl.load(cu_ptr + b)
    seq_len = tl.load(cu_ptr + b + 1) - seq_start
    if m_block * BLOCK_M < seq_len:
        EVEN_D: tl.constexpr = BLOCK_D == D
        kvh = h // GROUPS
        offs_m = m_block * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = tl.arange(0, BLOCK_N)
        offs_d = tl.arange(0, BLOCK_D)
        row0 = seq_start.to(tl.int64)
        q_rows = offs_m.to(tl.int64) if OFF64 else offs_m
        q_ptrs = q_ptr + row0 * stride_qt + h * stride_qh + q_rows[:, None] * stride_qt + offs_d[None, :]
        q = tl.load(q_ptrs, mask=(offs_m[:, None] < seq_len) & (offs_d[None, :] < D), other=0.0)
        q = (q.to(tl.float32) * qk_scale).to(DOT)  # softmax scale and log2 e folded in once
        k_base = k_ptr + row0 * stride_kt + kvh * stride_kh
        v_base = v_ptr + row0 * stride_vt + kvh * stride_vh
        m_i = tl.full((BLOCK_M,), float("-inf"), tl.float32)
        l_i = tl.zeros((BLOCK_M,), tl.float32)
        acc = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
        diag = m_block * BLOCK_M  # keys before it are visible to every row of the block
        for start_n in range(0, diag, BLOCK_N):
            acc, m_i, l_i = _unmasked_tile(
                acc,
                m_i,
                l_i,
                q,
                k_base,
                v_base,
                start_n,
                offs_m,
                offs_n,
                offs_d,
                stride_kt,
                stride_vt,
                seq_len,
                D,
                EVEN_D,
                OFF64,
                DOT,
            )
        for start_n in range(diag, tl.minimum(diag + BLOCK_M, seq_len), BLOCK_N):
            k = _load_kv(k_base, start_n, offs_n, offs_d, stride_kt, seq_len, D, True, EVEN_D, OFF64)
            s = tl.dot(q, tl.trans(k.to(DOT)))
            v = _load_kv(v_base, start_n, offs_n, offs_d, stride_vt, seq_len, D, True, EVEN_D, OFF64)
            acc, m_i, l_i = _softmax_step(acc, m_i, l_i, s, v.to(DOT), offs_m, start_n, offs_n, True, DOT)
        out = acc / l_i[:, None]
        o_ptrs = out_ptr + row0 * stride_ot + h * stride_oh + q_rows[:, None] * stride_ot + offs_d[None, :]
        tl.store(o_ptrs, out.to(out_ptr.dtype.element_ty), mask=(offs_m[:, None] < seq_len) & (offs_d[None, :] < D))


@triton.jit
def _tma_tile(
    acc,
    m_i,
    l_i,
    q,
    desc_k,
    desc_v,
    seq_start,
    kv_col,
    start_n,
    offs_m,
    offs_n,
    MASKED: tl.constexpr,
    DOT: tl.constexpr,
):
    """One key tile, K and V fetched by their descriptors; MASKED on the diagonal."""
    k = desc_k.load([seq_start + start_n, kv_col])
    s = tl.dot(q, tl.trans(k.to(DOT)))
    v = desc_v.load([seq_start + start_n, kv_col])
    return _softmax_step(acc, m_i, l_i, s, v.to(DOT), offs_m, start_n, offs_n, MASKED, DOT)


@triton.jit
def _flash_prefill_tma_kernel(
    desc_q,
    desc_k,
    desc_v,
    out_ptr,
    cu_ptr,
    qk_scale,
    stride_ot,
    stride_oh,
    GROUPS: tl.constexpr,
    D: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    DOT: tl.constexpr,
):
    """The same attention with every tile loaded by a tensor descriptor over the packed rows.

    A tile may run past its sequence into the next one (or past the last row, which reads as
    zeros): such keys sit after every valid query and fall under the causal mask, and such
    query rows are never stored.
    """
    m_block = tl.num_programs(0) - 1 - tl.program_id(0)  # heavy (late) query blocks first
    h, b = tl.program_id(1), tl.program_id(2)
    seq_start = tl.load(cu_ptr + b)
    seq_len = tl.load(cu_ptr + b + 1) - seq_start
    if m_block * BLOCK_M < seq_len:
        kv_col = (h // GROUPS) * D
        offs_m = m_block * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = tl.arange(0, BLOCK_N)
        q = desc_q.load([seq_start + m_block * BLOCK_M, h * D])
        q = (q.to(tl.float32) * qk_scale).to(DOT)  # softmax scale and log2 e folded in once
        m_i = tl.full((BLOCK_M,), float("-inf"), tl.float32)
        l_i = tl.zeros((BLOCK_M,), tl.float32)
        acc = tl.zeros((BLOCK_M, D), tl.float32)
        diag = m_block * BLOCK_M  # keys before it are visible to every row of the block
        for start_n in tl.range(0, diag, BLOCK_N):
            acc, m_i, l_i = _tma_tile(
                acc, m_i, l_i, q, desc_k, desc_v, seq_start, kv_col, start_n, offs_m, offs_n, False, DOT
            )
        for start_n in range(diag, tl.minimum(diag + BLOCK_M, seq_len), BLOCK_N):
            acc, m_i, l_i = _tma_tile(
                acc, m_i, l_i, q, desc_k, desc_v, seq_start, kv_col, start_n, offs_m, offs_n, True, DOT
            )
        out = acc / l_i[:, None]
        rows = seq_start.to(tl.int64) + offs_m
        o_ptrs = out_ptr + rows[:, None] * stride_ot + h * stride_oh + tl.arange(0, D)[None, :]
        tl.store(o_ptrs, out.to(out_ptr.dtype.element_ty), mask=offs_m[:, None] < seq_len)


def tma_supported(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """Whether the descriptor variant can take these tensors (alignment, head_dim)."""
    head_dim = q.shape[-1]
    if head_dim < 16 or head_dim & (head_dim - 1):
        return False
    try:
        from triton.tools.tensor_descriptor import TensorDescriptor  # noqa: F401
    except ImportError:
        return False
    size = q.element_size()
    return all(t.data_ptr() % 16 == 0 and (t.stride(0) * size) % 16 == 0 and t.stride(1) == head_dim for t in (q, k, v))


def _launch_tma(q, k, v, cu_seqlens, out, grid, scale, cfg: FlashConfig, block_n: int) -> None:
    from triton.tools.tensor_descriptor import TensorDescriptor

    head_dim = q.shape[-1]

    def rows(t, block):  # [T, heads, D] (heads contiguous in a row) as [T, heads * D]
        return TensorDescriptor(t, [t.shape[0], t.shape[1] * head_dim], [t.stride(0), 1], [block, head_dim])

    _flash_prefill_tma_kernel[grid](
        rows(q, cfg.block_m),
        rows(k, block_n),
        rows(v, block_n),
        out,
        cu_seqlens,
        scale * LOG2E,
        out.stride(0),
        out.stride(1),
        GROUPS=q.shape[1] // k.shape[1],
        D=head_dim,
        BLOCK_M=cfg.block_m,
        BLOCK_N=block_n,
        DOT=dot_dtype(q.dtype, q.device),
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
    )


def flash_prefill(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens: torch.Tensor,
    max_len: int,
    scale: float | None = None,
    out: torch.Tensor | None = None,
    config: FlashConfig | None = None,
) -> torch.Tensor:
    """Causal attention of packed fresh prompts: q [T, H, D] over k, v [T, KVH, D] -> [T, H, D].

    Sequence b is rows cu_seqlens[b]:cu_seqlens[b+1] of all three, at positions 0.. (no prefix).
    The last dimension of each tensor must be contiguous.
    """
    scale = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    if not use_triton(q):
        result = contiguous_prefill_reference(q, k, v, cu_seqlens, scale)
        return result if out is None else out.copy_(result)
    return launch_flash_prefill(q, k, v, cu_seqlens, max_len, scale, out, config)


def launch_flash_prefill(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens: torch.Tensor,
    max_len: int,
    scale: float | None = None,
    out: torch.Tensor | None = None,
    config: FlashConfig | None = None,
) -> torch.Tensor:
    """The Triton path of `flash_prefill`, for callers that already chose it."""
    scale = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    for t in (q, k, v):
        if t.stride(-1) != 1:
            raise ValueError("flash_prefill needs head_dim contiguous")
    out = torch.empty_like(q) if out is None else out
    _, heads, head_dim = q.shape
    cfg = config or pick_flash_config(max_len, head_dim, q.device)
    block_n = min(cfg.block_n, cfg.block_m)
    if cfg.block_m % block_n:
        raise ValueError(f"block_m {cfg.block_m} must be a multiple of block_n {block_n}")
    grid = (triton.cdiv(max_len, cfg.block_m), heads, cu_seqlens.numel() - 1)
    if cfg.tma and tma_supported(q, k, v):
        _launch_tma(q, k, v, cu_seqlens, out, grid, scale, cfg, block_n)
        return out
    # in-sequence offsets stay 32-bit unless a row offset could pass 2^31 elements
    off64 = (max_len + cfg.block_m) * max(q.stride(0), k.stride(0), v.stride(0), out.stride(0)) >= OFFSET32_LIMIT
    _flash_prefill_kernel[grid](
        q,
        k,
        v,
        out,
        cu_seqlens,
        scale * LOG2E,
        q.stride(0),
        q.stride(1),
        k.stride(0),
        k.stride(1),
        v.stride(0),
        v.stride(1),
        out.stride(0),
        out.stride(1),
        GROUPS=heads // k.shape[1],
        D=head_dim,
        BLOCK_M=cfg.block_m,
        BLOCK_N=block_n,
        BLOCK_D=triton.next_power_of_2(head_dim),
        OFF64=off64,
        DOT=dot_dtype(q.dtype, q.device),
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
    )
    return out
