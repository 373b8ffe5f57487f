"""int8 decode GEMV (M = 1) over the K-major layout of `gemv_layout`: streaming rows of K.

A program owns BLOCK_N output rows and walks K in steps of TILES layout tiles; each step loads a
[BLOCK_N, TILES, W] block of int32 words (each row's run of K is contiguous: 16-byte loads) and,
per field, the contiguous run of activations it multiplies, which every row of the block shares.
Each M row is its own program row (the weight is re-read from L2 for M > 1).
Per weight: one LOP3 puts the byte into the mantissa of 1.0, one FADD takes away 1.0 plus the
+128 bias, exactly, one FFMA accumulates into a 2-D fp32 tile that is reduced (tl.sum) once at
the end. The scale applies once per row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from vireo.kernels.gemv_layout import KMajorInt8
from vireo.kernels.split_k import launch_split_k, store_row
from vireo.kernels.tuning import kernel_table


@dataclass(frozen=True)
class KMajorGemvConfig:
    """Rows per program, layout tiles per K step, K split, launch settings."""

    block_n: int = 16
    tiles: int = 4
    split_k: int = 1
    num_warps: int = 4
    num_stages: int = 2


@triton.jit
def _field_minus(word, shift: tl.constexpr, width: tl.constexpr, offset):
    """(field at bits shift.. of word) * 2**(shift - 23) - (offset - 1), exactly, as float32.

    The field is OR-ed into the mantissa of 1.0 in place; `offset` (1.0 plus any bias, scaled
    the same way) is then subtracted: both are in [1, 2), so the difference is exact.
    """
    mask: tl.constexpr = ((1 << width) - 1) << shift
    return ((word & mask) | 0x3F800000).to(tl.float32, bitcast=True) - offset


@triton.jit
def _load_words(qw_ptr, rows, tiles, cols, stride_qn, N, TILE_COUNT, W: tl.constexpr, EVEN: tl.constexpr):
    """Words [BLOCK_N, TILES, W] of layout tiles `tiles` for output rows `rows`."""
    ptrs = qw_ptr + rows[:, None, None] * stride_qn + (tiles[:, None] * W + cols[None, :])[None]
    if EVEN:
        return tl.load(ptrs)
    mask = (rows[:, None, None] < N) & (tiles[:, None] < TILE_COUNT)[None]
    return tl.load(ptrs, mask=mask, other=0)


@triton.jit
def _x_run(
    x_row, tiles, cols, first, tile_k: tl.constexpr, K, scale: tl.constexpr, BLOCK_N: tl.constexpr, EVEN: tl.constexpr
):
    """Activations at k = tile * tile_k + first + c, times `scale`, as float32 [BLOCK_N, TILES, W].

    Loaded in the words' own shape (every row the same addresses): the load then gets the words'
    register layout, where a [TILES, W] load would be moved between layouts through shared
    memory, with barriers, inside the loop; the repeated addresses of one thread load once.
    """
    ks = tl.broadcast_to(
        (tiles[:, None] * tile_k + first + cols[None, :])[None], (BLOCK_N, tiles.shape[0], cols.shape[0])
    )
    if EVEN:
        x = tl.load(x_row + ks)
    else:
        x = tl.load(x_row + ks, mask=ks < K, other=0.0)
    return x.to(tl.float32) * scale


@triton.jit
def _w8a16_kmajor_kernel(
    x_ptr,
    qw_ptr,
    s_ptr,
    out_ptr,
    N,
    K,
    TILE_COUNT,
    stride_xm,
    stride_qn,
    stride_om,
    SPLIT_K,
    W: tl.constexpr,
    BLOCK_N: tl.constexpr,
    TILES: tl.constexpr,
    ATOMIC: tl.constexpr,
    EVEN: tl.constexpr,
):
    m, pid_n, pid_k = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.arange(0, W)
    x_row = x_ptr + m * stride_xm
    steps = tl.cdiv(TILE_COUNT, TILES)
    per_split = tl.cdiv(steps, SPLIT_K)
    acc = tl.zeros((BLOCK_N, TILES, W), tl.float32)
    for step in range(pid_k * per_split, tl.minimum((pid_k + 1) * per_split, steps)):
        tiles = step * TILES + tl.arange(0, TILES)
        words = _load_words(qw_ptr, rows, tiles, cols, stride_qn, N, TILE_COUNT, W, EVEN)
        # bias each signed byte to q + 128 in 0..255; bytes 2, 3 into bits 0..15
        low = words ^ -2139062144  # 0x80808080 as int32
        high = low >> 16
        for b in tl.static_range(4):
            acc += _byte_times_x(low, high, b, x_row, tiles, cols, W, K, EVEN)
    scale = tl.load(s_ptr + rows, mask=rows < N, other=0.0)
    store_row(out_ptr + m * stride_om, tl.sum(tl.sum(acc, 2), 1) * scale, rows, N, ATOMIC)


@triton.jit
def _byte_times_x(low, high, b: tl.constexpr, x_row, tiles, cols, W: tl.constexpr, K, EVEN: tl.constexpr):
    """x times signed byte b of each (biased) word: [BLOCK_N, TILES, W]."""
    SHIFT: tl.constexpr = (b % 2) * 8
    UNDO: tl.constexpr = 8388608.0 / (1 << SHIFT)  # 2**(23 - SHIFT)
    x = _x_run(x_row, tiles, cols, b * W, 4 * W, K, UNDO, low.shape[0], EVEN)
    if b < 2:
        q = _field_minus(low, SHIFT, 8, 1.0 + 128.0 / UNDO)  # 1.0 and the +128 bias
    else:
        q = _field_minus(high, SHIFT, 8, 1.0 + 128.0 / UNDO)
    return x * q


def _launch(
    kernel, x2, out2, layout, cfg: KMajorGemvConfig, tile_k: int, weight_args: tuple, weight_strides: tuple
) -> None:
    m, k = x2.shape
    n = out2.shape[1]
    tile_count = layout.words.shape[1] // layout.tile_words
    even = k == tile_count * tile_k and tile_count % cfg.tiles == 0 and n % cfg.block_n == 0

    def args_for(target):
        return (
            x2,
            *weight_args,
            target,
            n,
            k,
            tile_count,
            x2.stride(0),
            *weight_strides,
            target.stride(0),
            cfg.split_k,
        )

    launch_split_k(
        kernel,
        (m, triton.cdiv(n, cfg.block_n), cfg.split_k),
        out2,
        cfg.split_k,
        args_for,
        W=layout.tile_words,
        BLOCK_N=cfg.block_n,
        TILES=cfg.tiles,
        ATOMIC=cfg.split_k > 1,
        EVEN=even,
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
    )


def w8a16_kmajor_gemv(x2: torch.Tensor, layout: KMajorInt8, out2: torch.Tensor, cfg: KMajorGemvConfig) -> None:
    """out2 [M, N] = x2 [M, K] @ W^T for small M, from the int8 GEMV layout."""
    _launch(
        _w8a16_kmajor_kernel,
        x2,
        out2,
        layout,
        cfg,
        4 * layout.tile_words,
        (layout.words, layout.scales),
        (layout.words.stride(0),),
    )


def pick_kmajor_config(n: int, k: int, device: torch.device) -> KMajorGemvConfig:
    """Tuned tiles; K split only while N / BLOCK_N leaves the GPU's programs short of the target."""
    t = kernel_table(device)["int8_kmajor_gemv"]
    split = 1
    while (
        triton.cdiv(n, t["block_n"]) * split < t["split_k_target_programs"]
        and split < t["split_k_max"]
        and k // (split * 2) >= t["min_k_per_split"]
    ):
        split *= 2
    return KMajorGemvConfig(t["block_n"], t["tiles"], split, t["num_warps"], t["num_stages"])
