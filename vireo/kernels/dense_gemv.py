"""Decode-size (M <= 4) dense matmul y = x W^T for 16-bit weights, one launch: a weight stream.

At batch 1 a linear layer reads its whole weight for a few FLOPs per byte; cuBLAS answers it with
a split-K GEMM plus a reduce kernel, which on an H200 reaches ~94 % of copy speed on Llama-8B's
large shapes but ~60 % on its 4096 x 4096 ones (`benchmarks/results/gpu/kernels-h200-notes.md`).
Here each program owns BLOCK_N output rows and walks all of K in BLOCK_K tiles (16-byte loads
along K, the weight's contiguous dimension), keeping a [BLOCK_N, BLOCK_K] fp32 partial that is
reduced once at the end. Activations and weights share one 16-bit type; accumulation is fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from vireo.kernels.tuning import kernel_table, pick

MAX_M = 4


@dataclass(frozen=True)
class DenseGemvConfig:
    """Output rows per program, K tile, launch settings."""

    block_n: int = 8
    block_k: int = 512
    num_warps: int = 4
    num_stages: int = 3


@triton.jit
def _dense_gemv_kernel(
    x_ptr,
    w_ptr,
    b_ptr,
    out_ptr,
    N,
    K,
    stride_xm,
    stride_wn,
    stride_om,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    EVEN: tl.constexpr,
    BIAS: tl.constexpr,
):
    m, pid_n = tl.program_id(0), tl.program_id(1)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    w_rows = w_ptr + rows.to(tl.int64)[:, None] * stride_wn
    x_row = x_ptr + m * stride_xm
    acc = tl.zeros((BLOCK_N, BLOCK_K), tl.float32)
    for k in range(0, K, BLOCK_K):
        cols = k + offs_k
        if EVEN:  # N a multiple of BLOCK_N, K of BLOCK_K: no masks
            w = tl.load(w_rows + cols[None, :])
            x = tl.load(x_row + cols)
        else:
            w = tl.load(w_rows + cols[None, :], mask=(rows[:, None] < N) & (cols[None, :] < K), other=0.0)
            x = tl.load(x_row + cols, mask=cols < K, other=0.0)
        acc += w.to(tl.float32) * x.to(tl.float32)[None, :]
    y = tl.sum(acc, 1)
    if BIAS:
        y += tl.load(b_ptr + rows, mask=rows < N, other=0.0).to(tl.float32)
    tl.store(out_ptr + m * stride_om + rows, y.to(out_ptr.dtype.element_ty), mask=rows < N)


def pick_dense_gemv_config(n: int, k: int, device: torch.device) -> DenseGemvConfig:
    """Tiles by shape from the device's tuned table (on an H200: the down projection, gate/up and
    the LM head, then qkv and o, each within ~1 % of that shape's best of 10 configs)."""
    return DenseGemvConfig(**pick(kernel_table(device)["dense_gemv"], n=n, k=k))


def dense_gemv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
    config: DenseGemvConfig | None = None,
) -> torch.Tensor:
    """x [..., K] @ weight[N, K]^T (+ bias [N]) for at most MAX_M rows of x, in x's type."""
    k = x.shape[-1]
    n = weight.shape[0]
    x2 = x.reshape(-1, k)
    m = x2.shape[0]
    if m > MAX_M:
        raise ValueError(f"the dense GEMV takes at most {MAX_M} rows, not {m}")
    if weight.stride(1) != 1 or x2.stride(1) != 1:
        raise ValueError("the dense GEMV needs K contiguous in the weight and the activations")
    out2 = torch.empty((m, n), dtype=x.dtype, device=x.device) if out is None else out.view(m, n)
    cfg = config or pick_dense_gemv_config(n, k, x.device)
    even = n % cfg.block_n == 0 and k % cfg.block_k == 0
    _dense_gemv_kernel[(m, triton.cdiv(n, cfg.block_n))](
        x2,
        weight,
        weight if bias is None else bias,
        out2,
        n,
        k,
        x2.stride(0),
        weight.stride(0),
        out2.stride(0),
        BLOCK_N=cfg.block_n,
        BLOCK_K=cfg.block_k,
        EVEN=even,
        BIAS=bias is not None,
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
    )
    return out2.view(*x.shape[:-1], n)
