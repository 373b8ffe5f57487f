"""Decode-size (M <= 4) int4 weight-only matmul without tensor cores: an FMA GEMV.

At M = 1 a matmul is a stream over the weight; what limits a dequantizing kernel is then the
ALU work per weight, not the multiply. Each weight here costs ~3 instructions: one LOP3 puts
the nibble into the mantissa of 1.0, one FADD takes the 1.0 away (exact), one FFMA accumulates
with a power-of-two-rescaled activation. Scales and zero points are applied once per group,
outside the inner loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from vireo.kernels.qweight import Int4Weight
from vireo.kernels.split_k import launch_split_k, store_row
from vireo.kernels.tuning import kernel_table, pick

MAX_M = 4


@dataclass(frozen=True)
class GemvConfig:
    """Columns per program, packed rows per loop step, K split, launch settings; `high`: the
    int4 kernel's one-instruction-less nibble arithmetic (`_high_fields_dot`, 16-bit activations)."""

    block_n: int = 128
    rows: int = 16
    split_k: int = 1
    num_warps: int = 4
    num_stages: int = 3
    high: bool = False


@triton.jit
def _mantissa_field(word, shift: tl.constexpr, width: tl.constexpr):
    """(bits shift..shift+width of word) * 2**(shift - 23), exactly, as float32.

    The field is OR-ed into the mantissa of 1.0 in place (no shift), then 1.0 is subtracted.
    """
    mask: tl.constexpr = ((1 << width) - 1) << shift
    return ((word & mask) | 0x3F800000).to(tl.float32, bitcast=True) - 1.0


@triton.jit
def _nibble_times_x(packed, high, x, j: tl.constexpr):
    """x [R] times nibble j of packed [R, N] -> [R, N], the power of two undone on x."""
    FIELD: tl.constexpr = (j % 4) * 4
    UNDO: tl.constexpr = 8388608.0 / (1 << FIELD)  # 2**(23 - FIELD)
    if j < 4:
        q = _mantissa_field(packed, FIELD, 4)
    else:
        q = _mantissa_field(high, FIELD, 4)
    return (x * UNDO)[:, None] * q


@triton.jit
def _w4a16_gemv_kernel(
    x_ptr,
    qw_ptr,
    s_ptr,
    z_ptr,
    out_ptr,
    N,
    K,
    stride_xm,
    stride_qk,
    stride_sg,
    stride_om,
    SPLIT_K,
    GROUP: tl.constexpr,
    BLOCK_N: tl.constexpr,
    ROWS: tl.constexpr,
    ATOMIC: tl.constexpr,
    EVEN: tl.constexpr,
    HIGH: tl.constexpr,
):
    # rows of x are the fastest grid axis: programs sharing a weight tile run together (L2 hits)
    m, pid_n, pid_k = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_r = tl.arange(0, ROWS)
    n_mask = offs_n < N
    x_row = x_ptr + m * stride_xm
    rows_total = tl.cdiv(K, 8)
    steps = tl.cdiv(rows_total, ROWS)
    per_split = tl.cdiv(steps, SPLIT_K)
    acc = tl.zeros((BLOCK_N,), tl.float32)
    zero_acc = tl.zeros((BLOCK_N,), tl.float32)
    for step in range(pid_k * per_split, tl.minimum((pid_k + 1) * per_split, steps)):
        rows = step * ROWS + offs_r
        ptrs = qw_ptr + rows[:, None] * stride_qk + offs_n[None, :]
        if EVEN:  # K a multiple of 8 * ROWS and N of BLOCK_N: no masks
            packed = tl.load(ptrs)
        else:
            packed = tl.load(ptrs, mask=(rows[:, None] < rows_total) & n_mask[None, :], other=0)
        if HIGH:
            q_part, x_sum = _high_fields_dot(packed, x_row, rows, K, EVEN)
        else:
            q_part, x_sum = _exact_fields_dot(packed, x_row, rows, K, EVEN)
        # one step lies inside one group (GROUP % (8 * ROWS) == 0): one scale per column
        group = step * ROWS * 8 // GROUP
        if EVEN:
            scale = tl.load(s_ptr + group * stride_sg + offs_n).to(tl.float32)
            zero = tl.load(z_ptr + group * stride_sg + offs_n).to(tl.float32)
        else:
            scale = tl.load(s_ptr + group * stride_sg + offs_n, mask=n_mask, other=0.0).to(tl.float32)
            zero = tl.load(z_ptr + group * stride_sg + offs_n, mask=n_mask, other=0).to(tl.float32)
        acc += q_part * scale
        zero_acc += x_sum * scale * zero
    store_row(out_ptr + m * stride_om, acc - zero_acc, offs_n, N, ATOMIC)


@triton.jit
def _exact_fields_dot(packed, x_row, rows, K, EVEN: tl.constexpr):
    """sum_k q_k x_k per column [N] and sum_k x_k, each nibble made exact (LOP3, FADD, FFMA)."""
    # nibbles 4..7 into bits 0..15 (logical shift), so every nibble sits in the mantissa
    high = (packed.to(tl.uint32, bitcast=True) >> 16).to(tl.int32, bitcast=True)
    x = _x_column(x_row, rows, 0, K, EVEN)
    x_sum = x
    q_sum = _nibble_times_x(packed, high, x, 0)
    for j in tl.static_range(1, 8):
        x = _x_column(x_row, rows, j, K, EVEN)
        x_sum += x
        q_sum += _nibble_times_x(packed, high, x, j)
    return tl.sum(q_sum, 0), tl.sum(x_sum, 0)  # rows live in one thread: an in-register sum


@triton.jit
def _high_fields_dot(packed, x_row, rows, K, EVEN: tl.constexpr):
    """The same sums with one instruction less per weight: each nibble is shifted (four shifts
    per word serve all eight) to mantissa bits 12..15 or 16..19 of 1.0, and m * x' (x' = x
    scaled so that m * x' = x' + q x) is accumulated as it is; sum x' comes off once per step.
    The 1.0 carried along costs 7 (bits 16..19) or 11 (bits 12..15) of fp32's 24 bits on the
    partial sums of one step: ~1e-4 relative, far under 16-bit activations' own rounding."""
    words = packed.to(tl.uint32, bitcast=True)
    right8 = (words >> 8).to(tl.int32, bitcast=True)
    right16 = (words >> 16).to(tl.int32, bitcast=True)
    left8 = packed << 8
    left16 = packed << 16
    x_sum = tl.zeros(rows.shape, tl.float32)
    x_scaled_sum = tl.zeros(rows.shape, tl.float32)
    q_sum = tl.zeros(packed.shape, tl.float32)
    for j in tl.static_range(8):
        if j == 0:
            src = left16
        elif j < 3:
            src = left8
        elif j < 5:
            src = packed
        elif j < 7:
            src = right8
        else:
            src = right16
        x = _x_column(x_row, rows, j, K, EVEN)
        x_scaled = _scaled_for_field(x, j)
        x_sum += x
        x_scaled_sum += x_scaled
        q_sum += x_scaled[:, None] * _high_field(src, j)
    return tl.sum(q_sum, 0) - tl.sum(x_scaled_sum, 0), tl.sum(x_sum, 0)


@triton.jit
def _high_field(src, j: tl.constexpr):
    """1 + q * 2**(AT - 23) for nibble j, which `src` holds at bit AT (16 for even j, 12 odd)."""
    AT: tl.constexpr = 16 if j % 2 == 0 else 12
    return ((src & (0xF << AT)) | 0x3F800000).to(tl.float32, bitcast=True)


@triton.jit
def _scaled_for_field(x, j: tl.constexpr):
    """x * 2**(23 - AT): times `_high_field` it gives x * 2**(23 - AT) + q x."""
    AT: tl.constexpr = 16 if j % 2 == 0 else 12
    SCALE: tl.constexpr = 8388608.0 / (1 << AT)
    return x * SCALE


@triton.jit
def _x_column(x_row, rows, j: tl.constexpr, K, EVEN: tl.constexpr):
    """Activations 8 * rows + j (the inputs that nibble j of each packed row multiplies)."""
    ks = rows * 8 + j
    if EVEN:
        x = tl.load(x_row + ks)
    else:
        x = tl.load(x_row + ks, mask=ks < K, other=0.0)
    return x.to(tl.float32)


def gemv_supported(w: Int4Weight, m: int, cfg: GemvConfig) -> bool:
    """Whether the GEMV takes this problem (else the tensor-core kernel does)."""
    return m <= MAX_M and w.group_size % (8 * cfg.rows) == 0


def pick_gemv_config(n: int, k: int, group_size: int, device: torch.device) -> GemvConfig:
    """Many small programs, so that most of the weight is in flight at once (a GEMV of a few MB is
    latency-bound otherwise); K split up to one program per loop step (tuned table)."""
    t = kernel_table(device)["int4_gemv"]
    rows = min(pick(t["rows"], weights=n * k), group_size // 8)
    steps = triton.cdiv(triton.cdiv(k, 8), rows)
    return GemvConfig(
        t["block_n"], rows, max(1, min(t["split_k_max"], steps)), t["num_warps"], t["num_stages"], t["high"]
    )


def w4a16_gemv(x2: torch.Tensor, w: Int4Weight, out2: torch.Tensor, cfg: GemvConfig) -> None:
    """out2 [M, N] = x2 [M, K] @ W^T for M <= 4, int4 weight."""
    m, k = x2.shape
    n = w.shape[0]
    even = k % (8 * cfg.rows) == 0 and n % cfg.block_n == 0

    def args_for(target):
        return (
            x2,
            w.qweight,
            w.scales,
            w.zeros,
            target,
            n,
            k,
            x2.stride(0),
            w.qweight.stride(0),
            w.scales.stride(0),
            target.stride(0),
            cfg.split_k,
        )

    launch_split_k(
        _w4a16_gemv_kernel,
        (m, triton.cdiv(n, cfg.block_n), cfg.split_k),
        out2,
        cfg.split_k,
        args_for,
        GROUP=w.group_size,
        BLOCK_N=cfg.block_n,
        ROWS=cfg.rows,
        ATOMIC=cfg.split_k > 1,
        EVEN=even,
        HIGH=cfg.high and x2.dtype != torch.float32,
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
    )
