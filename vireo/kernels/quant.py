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
from vireo.kernels.gemv_kmajor import KMajorGemvConfig, pick_kmajor_config, w8a16_kmajor_gemv
from vireo.kernels.quant_gemv import GemvConfig, gemv_supported, pick_gemv_config, w4a16_gemv
from vireo.kernels.quant_mma import MmaConfig, mma_supported, pick_mma_config, w4a16_mma
from vireo.kernels.qweight import Int4Weight, Int8Weight, dequantize
from vireo.kernels.split_k import launch_split_k
from vireo.kernels.tuning import kernel_table


@dataclass(frozen=True)
class MatmulConfig:
    """Tile shape and launch settings of one tensor-core quantized matmul launch."""

    block_m: int = 16
    block_n: int = 64
    block_k: int = 128
    split_k: int = 1
    num_warps: int = 4
    num_stages: int = 3
    deq16: bool = False  # int4 only: dequantize in 16-bit arithmetic (magic-number trick)


@triton.jit
def _w8a16_kernel(
    x_ptr,
    qw_ptr,
    s_ptr,
    out_ptr,
    M,
    N,
    K,
    stride_xm,
    stride_qk,
    stride_om,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    SPLIT_K: tl.constexpr,
    DOT: tl.constexpr,
):
    pid_m, pid_n, pid_k = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    tiles = tl.cdiv(K, BLOCK_K)
    per_split = tl.cdiv(tiles, SPLIT_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for t in range(pid_k * per_split, tl.minimum((pid_k + 1) * per_split, tiles)):
        ks = t * BLOCK_K + offs_k
        x = tl.load(
            x_ptr + offs_m[:, None] * stride_xm + ks[None, :], mask=(offs_m[:, None] < M) & (ks[None, :] < K), other=0.0
        )
        q = tl.load(
            qw_ptr + ks[:, None] * stride_qk + offs_n[None, :], mask=(ks[:, None] < K) & (offs_n[None, :] < N), other=0
        )
        acc += tl.dot(x.to(DOT), q.to(tl.float32).to(DOT))
    # the per-output-channel scale commutes with the sum over K: apply it once at the end
    scale = tl.load(s_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)
    acc = acc * scale[None, :]
    _store_out(out_ptr, acc, offs_m, offs_n, M, N, stride_om, SPLIT_K)


@triton.jit
def _store_out(out_ptr, acc, offs_m, offs_n, M, N, stride_om, SPLIT_K: tl.constexpr):
    """Write (or, split over K, atomically add) the [M, N] tile."""
    out = out_ptr + offs_m[:, None] * stride_om + offs_n[None, :]
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    if SPLIT_K == 1:
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=mask)
    else:
        tl.atomic_add(out, acc, mask=mask)


@triton.jit
def _w4a16_kernel(
    x_ptr,
    qw_ptr,
    s_ptr,
    z_ptr,
    out_ptr,
    M,
    N,
    K,
    stride_xm,
    stride_qk,
    stride_sg,
    stride_om,
    GROUP: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    SPLIT_K: tl.constexpr,
    DEQ16: tl.constexpr,
    DOT: tl.constexpr,
):
    pid_m, pid_n, pid_k = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_i = tl.arange(0, BLOCK_K // 8)  # packed rows of one tile
    rows_total = tl.cdiv(K, 8)
    tiles = tl.cdiv(K, BLOCK_K)
    per_split = tl.cdiv(tiles, SPLIT_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
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
            x = tl.load(
                x_ptr + offs_m[:, None] * stride_xm + ks[None, :],
                mask=(offs_m[:, None] < M) & (ks[None, :] < K),
                other=0.0,
            )
            acc += tl.dot(x.to(DOT), w)
    _store_out(out_ptr, acc, offs_m, offs_n, M, N, stride_om, SPLIT_K)


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
            # one name per branch: Triton folds the branch at compile time, mypy sees a redefinition
            magic_bits: tl.constexpr = 0x4300  # type: ignore[no-redef]
            magic: tl.constexpr = 128.0  # type: ignore[no-redef]
        as16 = (nib | magic_bits).to(tl.int16).to(DOT, bitcast=True)
        w = (as16 - (zero + magic).to(DOT)) * scale.to(DOT)
    else:
        as32 = (nib | 0x4B000000).to(tl.float32, bitcast=True)
        w = ((as32 - (zero + 8388608.0)) * scale).to(DOT)
    return w


@triton.jit
def _w4_dequant_kernel(
    qw_ptr,
    s_ptr,
    z_ptr,
    w_ptr,
    N,
    K,
    stride_qk,
    stride_sg,
    stride_wk,
    GROUP: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
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
        tl.store(
            w_ptr + ks[:, None] * stride_wk + offs_n[None, :],
            w.to(w_ptr.dtype.element_ty),
            mask=(ks[:, None] < K) & (offs_n[None, :] < N),
        )


def pick_config(n: int, k: int, bits: int, device: torch.device) -> MatmulConfig:
    """Tensor-core tiles for a decode-size problem (M <= 16; larger M dequantizes once), with K
    split so that the grid fills the GPU (tuned table)."""
    table = kernel_table(device)
    t = table["tensor_core"][f"int{bits}"]
    tiles_n = triton.cdiv(n, t["block_n"])
    if "split_k_programs_per_sm" in t:
        split = table["num_sms"] * t["split_k_programs_per_sm"] // tiles_n
    else:
        split = t["split_k"]
    split = max(1, min(split, triton.cdiv(k, t["min_k_tiles_per_split"] * t["block_k"]), t["split_k_max"]))
    return MatmulConfig(
        t["block_m"], t["block_n"], t["block_k"], _pow2_floor(split), t["num_warps"], t["num_stages"], t["deq16"]
    )


def _pow2_floor(v: int) -> int:
    return 1 << (max(v, 1).bit_length() - 1)


def decode_layouts_used(device: torch.device) -> tuple[bool, bool]:
    """Whether the device's table ever picks the int4 tensor-core (MMA) kernel and the int8
    K-major GEMV, i.e. whether a weight's re-packed copies for them are worth making at load."""
    t = kernel_table(device)["quant_matmul"]
    return t["int4_mma_m"][1] > 0, t["int8_kmajor_gemv_max_m"] > 0


def w8a16_reference(x: torch.Tensor, w: Int8Weight) -> torch.Tensor:
    """x @ W^T in float32 through the dequantized weight, cast back to x's dtype."""
    return (x.float() @ dequantize(w).t().to(x.device)).to(x.dtype)


def w4a16_reference(x: torch.Tensor, w: Int4Weight) -> torch.Tensor:
    """x @ W^T in float32 through the dequantized weight, cast back to x's dtype."""
    return (x.float() @ dequantize(w).t().to(x.device)).to(x.dtype)


def w8a16_matmul(
    x: torch.Tensor,
    w: Int8Weight,
    out: torch.Tensor | None = None,
    config: MatmulConfig | KMajorGemvConfig | None = None,
) -> torch.Tensor:
    """x [..., K] @ W^T -> [..., N] with an int8 weight; Triton on CUDA, torch on CPU."""
    if not use_triton(x):
        result = w8a16_reference(x, w)
        return result if out is None else out.copy_(result)
    return launch_quantized_matmul(x, w, out, config)


def w4a16_matmul(
    x: torch.Tensor,
    w: Int4Weight,
    out: torch.Tensor | None = None,
    config: MatmulConfig | GemvConfig | MmaConfig | None = None,
) -> torch.Tensor:
    """x [..., K] @ W^T -> [..., N] with a packed int4 weight; Triton on CUDA, torch on CPU."""
    if not use_triton(x):
        result = w4a16_reference(x, w)
        return result if out is None else out.copy_(result)
    return launch_quantized_matmul(x, w, out, config)


def launch_quantized_matmul(
    x: torch.Tensor, w: Int8Weight | Int4Weight, out: torch.Tensor | None = None, config=None
) -> torch.Tensor:
    """The Triton path of `w8a16_matmul` / `w4a16_matmul`, for callers that already chose it.

    Without a `config`, the device's table picks the kernel by M: from `dequant_cublas_min_m`
    rows the weight is dequantized once and cuBLAS multiplies; below, int4 takes the FMA GEMV
    (M up to `int4_gemv_max_m`) or the small-M tensor-core kernel over its MMA layout (M in
    `int4_mma_m`, N >= K), int8 the K-major GEMV (M up to `int8_kmajor_gemv_max_m`), and the
    rest the tensor-core kernel of this file."""
    x2 = x.reshape(-1, x.shape[-1])
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    n, k = w.shape
    m = x2.shape[0]
    if out is None:
        out = torch.empty(*x.shape[:-1], n, dtype=x.dtype, device=x.device)
    out2 = out.view(-1, n)
    rules = kernel_table(x.device)["quant_matmul"]
    if config is None and m >= rules["dequant_cublas_min_m"]:
        torch.matmul(x2, _dequantized(w, x.dtype), out=out2)
        return out
    if isinstance(w, Int4Weight):
        _int4_small_m(x2, w, out2, config, rules)
    else:
        _int8_small_m(x2, w, out2, config, rules)
    return out


def _dequantized(w: Int8Weight | Int4Weight, dtype: torch.dtype) -> torch.Tensor:
    """The dense [K, N] weight for cuBLAS (int8 is exact in bf16 / fp16)."""
    if isinstance(w, Int4Weight):
        return _w4_dequantize_triton(w, dtype)
    return w.qweight.to(dtype) * w.scales.to(dtype)


def _int8_small_m(x2, w: Int8Weight, out2, config, rules: dict) -> None:
    m, (n, k) = x2.shape[0], w.shape
    if isinstance(config, KMajorGemvConfig):
        if w.kmajor is None:
            raise ValueError("a KMajorGemvConfig needs a weight made by gemv_layout.with_kmajor")
        w8a16_kmajor_gemv(x2, w.kmajor, out2, config)
    elif config is None and w.kmajor is not None and m <= rules["int8_kmajor_gemv_max_m"]:
        w8a16_kmajor_gemv(x2, w.kmajor, out2, pick_kmajor_config(n, k, x2.device))
    else:
        cfg = config or pick_config(n, k, 8, x2.device)
        _launch(_w8a16_kernel, x2, out2, cfg, (w.qweight, w.scales), (w.qweight.stride(0),))


def _int4_small_m(x2, w: Int4Weight, out2, config, rules: dict) -> None:
    m, (n, k) = x2.shape[0], w.shape
    low, high = rules["int4_mma_m"]
    if isinstance(config, MmaConfig):
        if w.mma is None:
            raise ValueError("an MmaConfig needs a weight made by gemv_layout.with_mma")
        w4a16_mma(x2, w.mma, out2, config)
        return
    if config is None and low <= m <= high and n >= k and mma_supported(w.mma, m):
        w4a16_mma(x2, w.mma, out2, pick_mma_config(n, k, w.group_size, x2.device))
        return
    if isinstance(config, GemvConfig):
        w4a16_gemv(x2, w, out2, config)
        return
    if config is None and m <= rules["int4_gemv_max_m"]:
        gemv = pick_gemv_config(n, k, w.group_size, x2.device)
        if gemv_supported(w, m, gemv):
            w4a16_gemv(x2, w, out2, gemv)
            return
    cfg = config or pick_config(n, k, 4, x2.device)
    _launch(
        _w4a16_kernel,
        x2,
        out2,
        cfg,
        (w.qweight, w.scales, w.zeros),
        (w.qweight.stride(0), w.scales.stride(0)),
        GROUP=w.group_size,
        DEQ16=cfg.deq16 and dot_dtype(x2.dtype, x2.device) != tl.float32,
    )


def _launch(kernel, x2, out2, cfg: MatmulConfig, weight_args: tuple, weight_strides: tuple, **meta) -> None:
    m, k = x2.shape
    n = out2.shape[1]

    def args_for(target):
        return (x2, *weight_args, target, m, n, k, x2.stride(0), *weight_strides, target.stride(0))

    grid = (triton.cdiv(m, cfg.block_m), triton.cdiv(n, cfg.block_n), cfg.split_k)
    launch_split_k(
        kernel,
        grid,
        out2,
        cfg.split_k,
        args_for,
        BLOCK_M=cfg.block_m,
        BLOCK_N=cfg.block_n,
        BLOCK_K=cfg.block_k,
        SPLIT_K=cfg.split_k,
        DOT=dot_dtype(x2.dtype, x2.device),
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
        **meta,
    )


def w4_dequantize(w: Int4Weight, dtype: torch.dtype, out: torch.Tensor | None = None) -> torch.Tensor:
    """The weight as a dense [K, N] matrix of `dtype` (Triton kernel when dispatched there)."""
    if not use_triton(w.qweight):
        result = dequantize(w).t().to(dtype)
        return result if out is None else out.copy_(result)
    return _w4_dequantize_triton(w, dtype, out)


def _w4_dequantize_triton(w: Int4Weight, dtype: torch.dtype, out: torch.Tensor | None = None) -> torch.Tensor:
    n, k = w.shape
    out = torch.empty(k, n, dtype=dtype, device=w.qweight.device) if out is None else out
    block_r, block_n = 16, 128
    grid = (triton.cdiv(triton.cdiv(k, 8), block_r), triton.cdiv(n, block_n))
    _w4_dequant_kernel[grid](
        w.qweight,
        w.scales,
        w.zeros,
        out,
        n,
        k,
        w.qweight.stride(0),
        w.scales.stride(0),
        out.stride(0),
        GROUP=w.group_size,
        BLOCK_R=block_r,
        BLOCK_N=block_n,
    )
    return out
