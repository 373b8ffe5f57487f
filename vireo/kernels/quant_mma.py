"""Small-M (2 <= M <= 8) W4A16 matmul on tensor cores, from the `MmaInt4` layout.

The weight is the MMA's first operand (N rows fill its 64-row side), the activations x^T the
second, M padded to 8 (a 16-wide variant gave wrong results on the H200 with Triton 3.6 in some
configurations and was removed; benchmarks/results/gpu/kernels-h200-notes.md). Per weight the
dequantization is about one instruction: a shift and a mask of an int32 word turn two nibbles
into two 16-bit floats 16 + q at once (the nibble lands in the mantissa of 16.0, exactly), and the
tensor core does the multiply-add. The group scale multiplies each group's [BLOCK_N, M] partial;
the magic 16 and the zero point come off once per program: sum_k (q - z) x s =
sum_k (16 + q) x s - (16 + z) s sum_k x, summed over the program's groups. A K tile is one group.

With K split over programs, each writes its fp32 partial to a workspace and bumps a per-tile
counter; the last to arrive sums the partials and writes the output (one launch, no zeroed
buffer), then resets the counter. Launches that share the counters must run one after another
(one stream), as the engine's do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from vireo.kernels.gemv_layout import MMA_ROWS, MmaInt4
from vireo.kernels.tuning import kernel_table, pick

MAX_SPLIT_GROUPS = 16  # per program: the zero-point terms are summed in one [groups, G, M] tile
MAX_M = 8  # the activations' side of the MMA: M is padded to 8


@dataclass(frozen=True)
class MmaConfig:
    """Output rows per program (a power-of-two multiple of MMA_ROWS), K split, launch settings."""

    block_n: int = 64
    split_k: int = 8
    num_warps: int = 4
    num_stages: int = 1


@triton.jit
def _halves(words, i: tl.constexpr, fmask, FIELD: tl.constexpr, MAGIC: tl.constexpr):
    """Nibble i of both 16-bit halves of each word, moved to bit FIELD and OR-ed into MAGIC."""
    SHIFT: tl.constexpr = 4 * i - FIELD
    if SHIFT > 0:
        t = words >> SHIFT
    elif SHIFT < 0:
        t = words << -SHIFT
    else:
        t = words
    return (t & fmask) | (MAGIC * 65537)


@triton.jit
def _unpack(words, fmask, FIELD: tl.constexpr, MAGIC: tl.constexpr, HALF: tl.constexpr, DOT: tl.constexpr):
    """Words [BLOCK_N, W] -> 16 + q [BLOCK_N, 8 W] in the activations' 16-bit float type.

    The four masked words are laid side by side as int32 first, and only then split into their
    halves, so each register already holds two neighbouring inputs (no byte permutes).
    """
    rows: tl.constexpr = words.shape[0]
    w: tl.constexpr = words.shape[1]
    t = tl.reshape(
        tl.join(
            tl.join(_halves(words, 0, fmask, FIELD, MAGIC), _halves(words, 1, fmask, FIELD, MAGIC)),
            tl.join(_halves(words, 2, fmask, FIELD, MAGIC), _halves(words, 3, fmask, FIELD, MAGIC)),
        ),
        (rows, 4 * w),
    )
    lo = t.to(tl.int16).to(HALF, bitcast=True)
    hi = (t >> 16).to(tl.int16).to(HALF, bitcast=True)
    return tl.reshape(tl.join(lo, hi), (rows, 8 * w)).to(DOT)


@triton.jit
def _w4a16_mma_kernel(
    x_ptr,
    qw_ptr,
    s_ptr,
    zs_ptr,
    out_ptr,
    ws_ptr,
    lock_ptr,
    M,
    N,
    K,
    GROUPS,
    PER_SPLIT,
    stride_xm,
    stride_zn,
    stride_om,
    fmask,
    W: tl.constexpr,
    ROWS: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_M: tl.constexpr,
    SPLIT_K: tl.constexpr,
    SPLIT_GROUPS: tl.constexpr,
    FIELD: tl.constexpr,
    MAGIC: tl.constexpr,
    HALF: tl.constexpr,
    DOT: tl.constexpr,
):
    pid_n, pid_k = tl.program_id(0), tl.program_id(1)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    # row r of group g: tile r // ROWS, then g, then r % ROWS (one contiguous block per tile)
    tile_row = (rows // ROWS * GROUPS) * ROWS + rows % ROWS
    words_at = qw_ptr + tile_row[:, None] * W + tl.arange(0, W)[None, :]
    offs_m = tl.arange(0, BLOCK_M)
    x_at = x_ptr + offs_m[None, :] * stride_xm + tl.arange(0, 8 * W)[:, None]
    first = pid_k * PER_SPLIT
    end = tl.minimum(first + PER_SPLIT, GROUPS)
    s_at = s_ptr + tile_row
    # the next group's words, activations and scales are loaded while this one computes
    words, x, scale = _group_inputs(words_at, x_at, s_at, first, first < end, rows, M, N, K, offs_m, W, ROWS)
    acc = tl.zeros((BLOCK_N, BLOCK_M), tl.float32)
    for g in range(first, end):
        nxt = _group_inputs(words_at, x_at, s_at, g + 1, g + 1 < end, rows, M, N, K, offs_m, W, ROWS)
        acc = _group_step(acc, words, x, scale, fmask, FIELD, MAGIC, HALF, DOT)
        words, x, scale = nxt
    acc -= _zero_terms(x_ptr, zs_ptr, rows, first, end, M, N, K, stride_xm, stride_zn, offs_m, 8 * W, SPLIT_GROUPS)
    _finish(acc, out_ptr, ws_ptr, lock_ptr, rows, offs_m, M, N, stride_om, pid_n, pid_k, SPLIT_K)


@triton.jit
def _group_step(
    acc, words, x, scale, fmask, FIELD: tl.constexpr, MAGIC: tl.constexpr, HALF: tl.constexpr, DOT: tl.constexpr
):
    """acc + scale * ((16 + q) @ x^T) for one group (an empty group has scale 0)."""
    w = _unpack(words, fmask, FIELD, MAGIC, HALF, DOT)
    if DOT == tl.float32:  # fp32 activations: full precision, not tf32
        part = tl.dot(w, x.to(DOT), input_precision="ieee")
    else:
        part = tl.dot(w, x.to(DOT))
    return acc + scale[:, None] * part


@triton.jit
def _group_inputs(words_at, x_at, s_at, g, valid, rows, M, N, K, offs_m, W: tl.constexpr, ROWS: tl.constexpr):
    """Group g's words [BLOCK_N, W], activations x^T [8 W, BLOCK_M] and scales [BLOCK_N].

    An invalid g (past the split) loads nothing: its bounds drop to 0 (a scalar `valid &` mask
    is not one the interpreter accepts).
    """
    row_ok = rows < tl.where(valid, N, 0)
    words = tl.load(words_at + g * ROWS * W, mask=row_ok[:, None], other=0)
    ks = g * 8 * W + tl.arange(0, 8 * W)
    k_end = tl.where(valid, K, 0)
    x = tl.load(x_at + g * 8 * W, mask=(offs_m[None, :] < M) & (ks[:, None] < k_end), other=0.0)
    scale = tl.load(s_at + g * ROWS, mask=row_ok, other=0.0)
    return words, x, scale


@triton.jit
def _zero_terms(
    x_ptr, zs_ptr, rows, first, end, M, N, K, stride_xm, stride_zn, offs_m, G: tl.constexpr, SPLIT_GROUPS: tl.constexpr
):
    """Sum over the split's groups of (16 + zero) * scale * (sum of the group's x): [BLOCK_N, M]."""
    groups = first + tl.arange(0, SPLIT_GROUPS)
    ks = groups[:, None, None] * G + tl.arange(0, G)[None, :, None]
    x = tl.load(
        x_ptr + offs_m[None, None, :] * stride_xm + ks,
        mask=(groups[:, None, None] < end) & (ks < K) & (offs_m[None, None, :] < M),
        other=0.0,
    )
    x_sums = tl.sum(x.to(tl.float32), 1)  # [SPLIT_GROUPS, BLOCK_M]
    zs = tl.load(
        zs_ptr + rows[:, None] * stride_zn + groups[None, :],
        mask=(rows[:, None] < N) & (groups[None, :] < end),
        other=0.0,
    )
    return tl.sum(zs[:, :, None] * x_sums[None, :, :], 1)


@triton.jit
def _finish(acc, out_ptr, ws_ptr, lock_ptr, rows, offs_m, M, N, stride_om, pid_n, pid_k, SPLIT_K: tl.constexpr):
    """Store acc^T, or with K split: park it, and let the last split of this tile sum them."""
    mask = (offs_m[None, :] < M) & (rows[:, None] < N)
    out = out_ptr + offs_m[None, :] * stride_om + rows[:, None]
    if SPLIT_K == 1:
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=mask)
    else:
        parts = ws_ptr + offs_m[None, :] * N + rows[:, None]
        tl.store(parts + pid_k * M * N, acc, mask=mask)
        tl.debug_barrier()  # every thread's partial before the (acq_rel, gpu-scope) count
        if tl.atomic_add(lock_ptr + pid_n, 1) == SPLIT_K - 1:
            total = tl.zeros(acc.shape, tl.float32)
            for s in tl.static_range(SPLIT_K):  # .cg: from L2, where the other SMs wrote
                total += tl.load(parts + s * M * N, mask=mask, other=0.0, cache_modifier=".cg")
            tl.store(out, total.to(out_ptr.dtype.element_ty), mask=mask)
            tl.atomic_xchg(lock_ptr + pid_n, 0)


_LOCKS: dict[torch.device, torch.Tensor] = {}


def _locks(device: torch.device, count: int) -> torch.Tensor:
    """Zeroed split-K counters, kept (each launch leaves them zero again)."""
    locks = _LOCKS.get(device)
    if locks is None or locks.numel() < count:
        locks = _LOCKS[device] = torch.zeros(max(count, 4096), dtype=torch.int32, device=device)
    return locks


def pick_mma_config(n: int, k: int, group_size: int, device: torch.device) -> MmaConfig:
    """Rows per program by N and K split over programs, at least a few groups each (tuned table)."""
    t = kernel_table(device)["int4_mma"]
    groups = triton.cdiv(k, group_size)
    split = max(1, min(t["split_k_max"], groups // t["min_groups_per_split"]))
    return MmaConfig(pick(t["block_n"], n=n), split, t["num_warps"], t["num_stages"])


def mma_supported(layout: MmaInt4 | None, m: int) -> bool:
    """Whether the tensor-core kernel takes this problem: the layout exists and M <= MAX_M."""
    return layout is not None and m <= MAX_M


_HALF = {
    torch.bfloat16: (tl.bfloat16, 3, 0x4180),
    torch.float16: (tl.float16, 6, 0x4C00),
    torch.float32: (tl.bfloat16, 3, 0x4180),
}


def w4a16_mma(x2: torch.Tensor, layout: MmaInt4, out2: torch.Tensor, cfg: MmaConfig) -> None:
    """out2 [M, N] = x2 [M, K] @ W^T for M <= 16, from the int4 tensor-core layout.

    The nibbles become the activations' 16-bit type (16 + q is exact in both); fp32 activations
    (interpreter tests) are multiplied by bf16-exact weights in fp32.
    """
    from vireo.kernels.dispatch import dot_dtype

    m, k = x2.shape
    n = out2.shape[1]
    half, field, magic = _HALF[x2.dtype]
    fmask = (0xF << field) | (0xF << (16 + field))
    if m > MAX_M:
        raise ValueError(f"the int4 tensor-core kernel takes M <= {MAX_M}, not {m}")
    groups = layout.words.shape[1]
    if cfg.block_n % MMA_ROWS or cfg.block_n & (cfg.block_n - 1):
        raise ValueError(f"block_n must be a power-of-two multiple of {MMA_ROWS} (the layout's row tiles)")
    # at most MAX_SPLIT_GROUPS groups per program (the zero-point terms are summed in one tile)
    split = max(1, min(max(cfg.split_k, triton.cdiv(groups, MAX_SPLIT_GROUPS)), groups))
    split_groups = triton.cdiv(groups, split)
    split = triton.cdiv(groups, split_groups)
    tiles = triton.cdiv(n, cfg.block_n)
    ws = torch.empty((split, m, n), dtype=torch.float32, device=x2.device) if split > 1 else out2
    locks = _locks(x2.device, tiles) if split > 1 else out2
    _w4a16_mma_kernel[(tiles, split)](
        x2,
        layout.words,
        layout.scales,
        layout.zero_scales,
        out2,
        ws,
        locks,
        m,
        n,
        k,
        groups,
        split_groups,
        x2.stride(0),
        layout.zero_scales.stride(0),
        out2.stride(0),
        fmask,
        W=layout.group_size // 8,
        ROWS=MMA_ROWS,
        BLOCK_N=cfg.block_n,
        BLOCK_M=MAX_M,
        SPLIT_K=split,
        SPLIT_GROUPS=triton.next_power_of_2(split_groups),
        FIELD=field,
        MAGIC=magic,
        HALF=half,
        DOT=dot_dtype(x2.dtype, x2.device),
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
    )
