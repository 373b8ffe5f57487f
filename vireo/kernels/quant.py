"""Weight-only quantized matmul: W8A16 and W4A16 (Triton, with torch references and dispatch).

`w8a16_matmul(x, Int8Weight)` and `w4a16_matmul(x, Int4Weight)` compute x @ W^T for fp16/bf16
activations x [..., K]. The weight is dequantized tile by tile inside the matmul loop, so at
decode sizes (M <= 16) the kernel reads 1 or 1/2 byte per weight instead of 2. Small M may split
K across programs (fp32 atomics) to fill the GPU; large M dequantizes once and calls cuBLAS.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from vireo.kernels.dispatch import dot_dtype, use_triton
from vireo.kernels.gemv_kmajor import (KMajorGemvConfig, pick_kmajor_config, w4a16_kmajor_gemv,
                                       w8a16_kmajor_gemv)
from vireo.kernels.qweight import Int4Weight, Int8Weight, dequantize
from vireo.kernels.quant_mma import MmaConfig, mma_supported, pick_mma_config, w4a16_mma
from vireo.kernels.quant_gemv import (GemvConfig, gemv_supported, pick_gemv_config, w4a16_gemv,
                                      w8a16_gemv)
from vireo.kernels.split_k import launch_split_k


@dataclass(frozen=True)
class MatmulConfig:
    """Tile shape and launch settings of one quantized matmul launch."""

    block_m: int = 16
    block_n: int = 64
    block_k: int = 128
    split_k: int = 1
    num_warps: int = 4
    num_stages: int = 3
    swap_ab: bool = False  # dot(W^T, x^T): N fills the MMA's long side when M is tiny
    deq16: bool = False  # int4 only: dequantize in 16-bit arithmetic (magic-number trick)


# M from which CUDA dequantizes the whole weight once and calls cuBLAS. The in-kernel tensor-core
# path measured 0.03-0.09x cuBLAS at M = 128 (int4) on an H200; dequant + cuBLAS 0.95-1.0x at 4096.
DEQUANT_GEMM_MIN_M = 17
# M up to which the FMA GEMV kernels (vireo.kernels.quant_gemv) beat the tensor-core kernel,
# per weight type (H200 sweep: the int8 GEMV lost to the tensor-core kernel even at M = 1).
GEMV_MAX_M = {4: 1, 8: 0}
# M up to which the K-major GEMV (vireo.kernels.gemv_kmajor) runs, for weights that carry its
# layout (`gemv_layout.with_kmajor`, made at load). H200: int8 M = 1 1.31-1.60x cuBLAS against
# 1.06-1.19x (tensor-core kernel); int4 1.06-1.21x against 1.36-1.41x (quant_gemv): not used.
# At M = 4 (one program row per x row) it lost to the tensor-core kernel by ~2x.
KMAJOR_GEMV_MAX_M = {4: 0, 8: 1}
# M range in which int4 weights that carry the tensor-core layout (`gemv_layout.with_mma`, made
# at load) run the small-M tensor-core kernel (vireo.kernels.quant_mma), for N >= K only. H200
# (run 14), M = 2 / 4 / 8: 4096^2 1.28 / 1.27 / 1.26x cuBLAS, 14336x4096 1.08 / 1.09 / 1.05x,
# against 0.89 / 0.89 / 0.82x and 0.79 / 0.77 / 0.69x for the tensor-core kernel above; at
# 4096x14336 it lost (0.88x against 0.98 / 0.96 / 0.88x). At M = 1 quant_gemv stays faster
# (1.34 / 1.42 / 1.40x against 1.30 / 1.13 / 0.92x).
MMA_M_RANGE = (2, 8)
NUM_SMS_GUESS = 132


@triton.jit
def _w8a16_kernel(x_ptr, qw_ptr, s_ptr, out_ptr, M, N, K, stride_xm, stride_qk, stride_om,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                  SPLIT_K: tl.constexpr, SWAP_AB: tl.constexpr, DOT: tl.constexpr):
    pid_m, pid_n, pid_k = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    tiles = tl.cdiv(K, BLOCK_K)
    per_split = tl.cdiv(tiles, SPLIT_K)
    acc = _zero_acc(BLOCK_M, BLOCK_N, SWAP_AB)
    for t in range(pid_k * per_split, tl.minimum((pid_k + 1) * per_split, tiles)):
        ks = t * BLOCK_K + offs_k
        x = tl.load(x_ptr + offs_m[:, None] * stride_xm + ks[None, :],
                    mask=(offs_m[:, None] < M) & (ks[None, :] < K), other=0.0)
        q = tl.load(qw_ptr + ks[:, None] * stride_qk + offs_n[None, :],
                    mask=(ks[:, None] < K) & (offs_n[None, :] < N), other=0)
        acc = _mma(acc, x.to(DOT), q.to(tl.float32).to(DOT), SWAP_AB)
    # the per-output-channel scale commutes with the sum over K: apply it once at the end
    scale = tl.load(s_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)
    if SWAP_AB:
        acc = acc * scale[:, None]
    else:
        acc = acc * scale[None, :]
    _store_out(out_ptr, acc, offs_m, offs_n, M, N, stride_om, SPLIT_K, SWAP_AB)


@triton.jit
def _zero_acc(BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, SWAP_AB: tl.constexpr):
    if SWAP_AB:
        acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    else:
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    return acc


@triton.jit
def _mma(acc, x, w, SWAP_AB: tl.constexpr):
    """acc += x @ w, or its transpose (w^T @ x^T) when SWAP_AB."""
    if SWAP_AB:
        acc += tl.dot(tl.trans(w), tl.trans(x))
    else:
        acc += tl.dot(x, w)
    return acc


@triton.jit
def _store_out(out_ptr, acc, offs_m, offs_n, M, N, stride_om, SPLIT_K: tl.constexpr,
               SWAP_AB: tl.constexpr):
    """Write (or, split over K, atomically add) the [M, N] tile; acc is [N, M] when SWAP_AB."""
    if SWAP_AB:
        out = out_ptr + offs_m[None, :] * stride_om + offs_n[:, None]
        mask = (offs_m[None, :] < M) & (offs_n[:, None] < N)
    else:
        out = out_ptr + offs_m[:, None] * stride_om + offs_n[None, :]
        mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    if SPLIT_K == 1:
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=mask)
    else:
        tl.atomic_add(out, acc, mask=mask)


@triton.jit
def _w4a16_kernel(x_ptr, qw_ptr, s_ptr, z_ptr, out_ptr, M, N, K, stride_xm, stride_qk, stride_sg,
                  stride_om, GROUP: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                  BLOCK_K: tl.constexpr, SPLIT_K: tl.constexpr, SWAP_AB: tl.constexpr,
                  DEQ16: tl.constexpr, DOT: tl.constexpr):
    pid_m, pid_n, pid_k = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_i = tl.arange(0, BLOCK_K // 8)  # packed rows of one tile
    rows_total = tl.cdiv(K, 8)
    tiles = tl.cdiv(K, BLOCK_K)
    per_split = tl.cdiv(tiles, SPLIT_K)
    acc = _zero_acc(BLOCK_M, BLOCK_N, SWAP_AB)
    for t in range(pid_k * per_split, tl.minimum((pid_k + 1) * per_split, tiles)):
        rows = t * (BLOCK_K // 8) + offs_i
        wmask = (rows[:, None] < rows_total) & (offs_n[None, :] < N)
        packed = tl.load(qw_ptr + rows[:, None] * stride_qk + offs_n[None, :], mask=wmask, other=0)
        # a group holds whole packed rows (G % 8 == 0), so one scale tile serves all 8 nibbles
        sg = (rows * 8 // GROUP)[:, None] * stride_sg + offs_n[None, :]
        scale = tl.load(s_ptr + sg, mask=wmask, other=0.0).to(tl.float32)
        zero = tl.load(z_ptr + sg, mask=wmask, other=0).to(tl.float32)
        for j in tl.static_range(8):
            w = _dequant_nibbles(packed, j, zero, scale, DEQ16, DOT)
            ks = rows * 8 + j
            x = tl.load(x_ptr + offs_m[:, None] * stride_xm + ks[None, :],
                        mask=(offs_m[:, None] < M) & (ks[None, :] < K), other=0.0)
            acc = _mma(acc, x.to(DOT), w, SWAP_AB)
    _store_out(out_ptr, acc, offs_m, offs_n, M, N, stride_om, SPLIT_K, SWAP_AB)


@triton.jit
def _dequant_nibbles(packed, j: tl.constexpr, zero, scale, DEQ16: tl.constexpr, DOT: tl.constexpr):
    """(q - zero) * scale for nibble j of each packed int32, without an int-to-float convert.

    OR-ing q into the mantissa of a power of two gives that power plus q exactly: 2**23 in
    fp32, 1024 in fp16 (0x6400), 128 in bf16 (0x4300); subtracting power + zero is exact.
    """
    nib = (packed >> (4 * j)) & 0xF
    if DEQ16:
        if DOT == tl.float16:
            magic_bits: tl.constexpr = 0x6400
            magic: tl.constexpr = 1024.0
        else:
            magic_bits: tl.constexpr = 0x4300
            magic: tl.constexpr = 128.0
        as16 = (nib | magic_bits).to(tl.int16).to(DOT, bitcast=True)
        w = (as16 - (zero + magic).to(DOT)) * scale.to(DOT)
    else:
        as32 = (nib | 0x4B000000).to(tl.float32, bitcast=True)
        w = ((as32 - (zero + 8388608.0)) * scale).to(DOT)
    return w


@triton.jit
def _w4_dequant_kernel(qw_ptr, s_ptr, z_ptr, w_ptr, N, K, stride_qk, stride_sg, stride_wk,
                       GROUP: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr):
    offs_r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = (offs_r[:, None] < tl.cdiv(K, 8)) & (offs_n[None, :] < N)
    packed = tl.load(qw_ptr + offs_r[:, None] * stride_qk + offs_n[None, :], mask=mask, other=0)
    sg = (offs_r * 8 // GROUP)[:, None] * stride_sg + offs_n[None, :]
    scale = tl.load(s_ptr + sg, mask=mask, other=0.0).to(tl.float32)
    zero = tl.load(z_ptr + sg, mask=mask, other=0).to(tl.float32)
    for j in tl.static_range(8):
        ks = offs_r * 8 + j
        w = (((packed >> (4 * j)) & 0xF).to(tl.float32) - zero) * scale
        tl.store(w_ptr + ks[:, None] * stride_wk + offs_n[None, :],
                 w.to(w_ptr.dtype.element_ty), mask=(ks[:, None] < K) & (offs_n[None, :] < N))


def pick_config(m: int, n: int, k: int, bits: int) -> MatmulConfig:
    """Tile shape for an (M, N, K) problem; from the H200 sweep of `vireo.kernels.bench`."""
    if m <= 16:
        block_k = 256 if bits == 4 else 128
        tiles_n = triton.cdiv(n, 128)
        # int4: split K until ~4 programs per SM (split 8 at N = 4096, 4 at N = 14336 won the
        # sweep); int8: split 8. At least two K tiles per split.
        split = NUM_SMS_GUESS * 4 // tiles_n if bits == 4 else 8
        split = max(1, min(split, triton.cdiv(k, 2 * block_k), 8))
        return MatmulConfig(16, 128, block_k, _pow2_floor(split), 4, 3, False, bits == 4)
    if m <= 64:
        return MatmulConfig(64 if m > 32 else 32, 64, 256 if bits == 4 else 128, 1, 4, 3)
    return MatmulConfig(128, 128, 64 if bits == 8 else 128, 1, 8, 3)


def _pow2_floor(v: int) -> int:
    return 1 << (max(v, 1).bit_length() - 1)


def _gemv_config(m: int, n: int, k: int, bits: int, w, config) -> GemvConfig | None:
    """The GEMV config to use, or None for the tensor-core kernel."""
    if isinstance(config, GemvConfig):
        return config
    if config is not None or m > GEMV_MAX_M[bits]:
        return None
    cfg = pick_gemv_config(m, n, k, bits, getattr(w, "group_size", 128))
    return cfg if gemv_supported(w, m, cfg) else None


def _kmajor_config(m: int, n: int, k: int, bits: int, w, config) -> KMajorGemvConfig | None:
    """The K-major GEMV config to use, or None when the weight has no such layout or M is large."""
    if isinstance(config, KMajorGemvConfig):
        if w.kmajor is None:
            raise ValueError("a KMajorGemvConfig needs a weight made by gemv_layout.with_kmajor")
        return config
    if config is not None or w.kmajor is None or m > KMAJOR_GEMV_MAX_M[bits]:
        return None
    return pick_kmajor_config(n, k, bits)


def _mma_config(m: int, n: int, k: int, w: Int4Weight, config) -> MmaConfig | None:
    """The tensor-core small-M config to use, or None when the weight has no such layout."""
    if isinstance(config, MmaConfig):
        if w.mma is None:
            raise ValueError("an MmaConfig needs a weight made by gemv_layout.with_mma")
        return config
    low, high = MMA_M_RANGE
    if config is not None or not low <= m <= high or n < k or not mma_supported(w.mma, m):
        return None
    return pick_mma_config(m, n, k, w.group_size)


def w8a16_reference(x: torch.Tensor, w: Int8Weight) -> torch.Tensor:
    """x @ W^T in float32 through the dequantized weight, cast back to x's dtype."""
    return (x.float() @ dequantize(w).t().to(x.device)).to(x.dtype)


def w4a16_reference(x: torch.Tensor, w: Int4Weight) -> torch.Tensor:
    """x @ W^T in float32 through the dequantized weight, cast back to x's dtype."""
    return (x.float() @ dequantize(w).t().to(x.device)).to(x.dtype)


def _flatten(x: torch.Tensor, out: torch.Tensor | None, n: int):
    x2 = x.reshape(-1, x.shape[-1])
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    if out is None:
        out = torch.empty(*x.shape[:-1], n, dtype=x.dtype, device=x.device)
    return x2, out, out.view(-1, n)


def _launch(kernel, x2, out2, cfg: MatmulConfig, weight_args: tuple, weight_strides: tuple,
            **meta) -> None:
    m, k = x2.shape
    n = out2.shape[1]

    def args_for(target):
        return (x2, *weight_args, target, m, n, k, x2.stride(0), *weight_strides, target.stride(0))
    grid = (triton.cdiv(m, cfg.block_m), triton.cdiv(n, cfg.block_n), cfg.split_k)
    launch_split_k(kernel, grid, out2, cfg.split_k, args_for, BLOCK_M=cfg.block_m,
                   BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, SPLIT_K=cfg.split_k,
                   SWAP_AB=cfg.swap_ab, DOT=dot_dtype(x2.dtype, x2.device),
                   num_warps=cfg.num_warps, num_stages=cfg.num_stages, **meta)


def w8a16_matmul(x: torch.Tensor, w: Int8Weight, out: torch.Tensor | None = None,
                 config: MatmulConfig | GemvConfig | KMajorGemvConfig | None = None
                 ) -> torch.Tensor:
    """x [..., K] @ W^T -> [..., N] with an int8 weight; Triton on CUDA, torch on CPU."""
    n, k = w.shape
    if not use_triton(x):
        result = w8a16_reference(x, w)
        return result if out is None else out.copy_(result)
    x2, out, out2 = _flatten(x, out, n)
    if config is None and x2.shape[0] >= DEQUANT_GEMM_MIN_M and x.is_cuda:
        dense = w.qweight.to(x.dtype) * w.scales.to(x.dtype)  # int8 is exact in bf16/fp16
        torch.matmul(x2, dense, out=out2)
        return out
    kmajor = _kmajor_config(x2.shape[0], n, k, 8, w, config)
    if kmajor is not None:
        w8a16_kmajor_gemv(x2, w.kmajor, out2, kmajor)
        return out
    gemv = _gemv_config(x2.shape[0], n, k, 8, w, config)
    if gemv is not None:
        w8a16_gemv(x2, w, out2, gemv)
        return out
    cfg = config or pick_config(x2.shape[0], n, k, bits=8)
    _launch(_w8a16_kernel, x2, out2, cfg, (w.qweight, w.scales), (w.qweight.stride(0),))
    return out


def w4a16_matmul(x: torch.Tensor, w: Int4Weight, out: torch.Tensor | None = None,
                 config: MatmulConfig | GemvConfig | KMajorGemvConfig | MmaConfig | None = None
                 ) -> torch.Tensor:
    """x [..., K] @ W^T -> [..., N] with a packed int4 weight; Triton on CUDA, torch on CPU."""
    n, k = w.shape
    if not use_triton(x):
        result = w4a16_reference(x, w)
        return result if out is None else out.copy_(result)
    x2, out, out2 = _flatten(x, out, n)
    if config is None and x2.shape[0] >= DEQUANT_GEMM_MIN_M and x.is_cuda:
        torch.matmul(x2, w4_dequantize(w, x.dtype), out=out2)
        return out
    mma = _mma_config(x2.shape[0], n, k, w, config)
    if mma is not None:
        w4a16_mma(x2, w.mma, out2, mma)
        return out
    kmajor = _kmajor_config(x2.shape[0], n, k, 4, w, config)
    if kmajor is not None:
        w4a16_kmajor_gemv(x2, w.kmajor, out2, kmajor)
        return out
    gemv = _gemv_config(x2.shape[0], n, k, 4, w, config)
    if gemv is not None:
        w4a16_gemv(x2, w, out2, gemv)
        return out
    cfg = config or pick_config(x2.shape[0], n, k, bits=4)
    _launch(_w4a16_kernel, x2, out2, cfg, (w.qweight, w.scales, w.zeros),
            (w.qweight.stride(0), w.scales.stride(0)), GROUP=w.group_size,
            DEQ16=cfg.deq16 and dot_dtype(x.dtype, x.device) != tl.float32)
    return out


def w4_dequantize(w: Int4Weight, dtype: torch.dtype, out: torch.Tensor | None = None) -> torch.Tensor:
    """The weight as a dense [K, N] matrix of `dtype` (Triton kernel when dispatched there)."""
    n, k = w.shape
    if not use_triton(w.qweight):
        result = dequantize(w).t().to(dtype)
        return result if out is None else out.copy_(result)
    out = torch.empty(k, n, dtype=dtype, device=w.qweight.device) if out is None else out
    block_r, block_n = 16, 128
    grid = (triton.cdiv(triton.cdiv(k, 8), block_r), triton.cdiv(n, block_n))
    _w4_dequant_kernel[grid](w.qweight, w.scales, w.zeros, out, n, k, w.qweight.stride(0),
                             w.scales.stride(0), out.stride(0), GROUP=w.group_size,
                             BLOCK_R=block_r, BLOCK_N=block_n)
    return out
