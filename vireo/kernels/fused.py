"""Small fused kernels of a Llama/Qwen2 layer: RMSNorm (+ residual add), rotary embedding,
SiLU-and-mul. Each is one pass over memory in Triton, with a torch reference for CPU tensors.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from vireo.kernels.dispatch import use_triton


@triton.jit
def _rms_norm_kernel(
    x_ptr,
    res_ptr,
    w_ptr,
    out_ptr,
    res_out_ptr,
    n_cols,
    eps,
    stride_x,
    stride_r,
    stride_o,
    stride_ro,
    HAS_RESIDUAL: tl.constexpr,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    if HAS_RESIDUAL:
        r = tl.load(res_ptr + row * stride_r + cols, mask=mask, other=0.0).to(tl.float32)
        summed = (x + r).to(res_out_ptr.dtype.element_ty)
        tl.store(res_out_ptr + row * stride_ro + cols, summed, mask=mask)
        x = summed.to(tl.float32)  # normalize exactly the residual stream that was stored
    inv_rms = 1.0 / tl.sqrt(tl.sum(x * x, 0) / n_cols + eps)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + row * stride_o + cols, (x * inv_rms * w).to(out_ptr.dtype.element_ty), mask=mask)


def rms_norm_reference(x, weight, eps, residual=None):
    """RMSNorm in float32; with `residual`, normalizes x + residual and returns it too."""
    if residual is not None:
        x = (x.float() + residual.float()).to(x.dtype)
    xf = x.float()
    normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * weight.float()
    return normed.to(x.dtype) if residual is None else (normed.to(x.dtype), x)


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    eps: float,
    residual: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
    residual_out: torch.Tensor | None = None,
):
    """RMSNorm over the last dim. With `residual`, returns (norm(x + residual), x + residual).

    `residual_out` may be `residual` itself (updated in place).
    """
    if not use_triton(x):
        result = rms_norm_reference(x, weight, eps, residual)
        if residual is None:
            return result if out is None else out.copy_(result)
        normed, summed = result
        out = normed if out is None else out.copy_(normed)
        return out, (summed if residual_out is None else residual_out.copy_(summed))
    return launch_rms_norm(x, weight, eps, residual, out, residual_out)


def launch_rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    eps: float,
    residual: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
    residual_out: torch.Tensor | None = None,
):
    """The Triton path of `rms_norm`, for callers that already chose it."""
    n_cols = x.shape[-1]
    x2 = x.reshape(-1, n_cols)
    out = torch.empty_like(x) if out is None else out
    out2 = out.view(-1, n_cols)
    has_res = residual is not None
    if residual is not None:
        residual_out = torch.empty_like(x) if residual_out is None else residual_out
        res2, res_out2 = residual.reshape(-1, n_cols), residual_out.view(-1, n_cols)
    else:
        res2, res_out2 = x2, out2
    _rms_norm_kernel[(x2.shape[0],)](
        x2,
        res2,
        weight,
        out2,
        res_out2,
        n_cols,
        eps,
        x2.stride(0),
        res2.stride(0),
        out2.stride(0),
        res_out2.stride(0),
        HAS_RESIDUAL=has_res,
        BLOCK=triton.next_power_of_2(n_cols),
        num_warps=4 if n_cols <= 4096 else 8,
    )
    return (out, residual_out) if has_res else out


@triton.jit
def _rope_kernel(
    x_ptr,
    out_ptr,
    pos_ptr,
    cs_ptr,
    n_heads,
    stride_xt,
    stride_xh,
    stride_ot,
    stride_oh,
    stride_cs,
    HALF: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_HALF: tl.constexpr,
):
    t = tl.program_id(0).to(tl.int64)
    heads = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    cols = tl.arange(0, BLOCK_HALF)
    pos = tl.load(pos_ptr + t).to(tl.int64)
    cos = tl.load(cs_ptr + pos * stride_cs + cols, mask=cols < HALF, other=0.0)
    sin = tl.load(cs_ptr + pos * stride_cs + HALF + cols, mask=cols < HALF, other=0.0)
    mask = (heads[:, None] < n_heads) & (cols[None, :] < HALF)
    base = x_ptr + t * stride_xt + heads[:, None] * stride_xh + cols[None, :]
    x1 = tl.load(base, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(base + HALF, mask=mask, other=0.0).to(tl.float32)
    obase = out_ptr + t * stride_ot + heads[:, None] * stride_oh + cols[None, :]
    dtype = out_ptr.dtype.element_ty
    tl.store(obase, (x1 * cos[None, :] - x2 * sin[None, :]).to(dtype), mask=mask)
    tl.store(obase + HALF, (x2 * cos[None, :] + x1 * sin[None, :]).to(dtype), mask=mask)


def rope_cos_sin(
    max_positions: int, head_dim: int, theta: float = 10000.0, inv_freq: torch.Tensor | None = None, device=None
) -> torch.Tensor:
    """Float32 table [max_positions, head_dim]: cos of each frequency, then sin.

    Pass the model's own `inv_freq` (e.g. HF's rotary embedding buffer) for scaled variants.
    """
    if inv_freq is None:
        inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.arange(max_positions, dtype=torch.float64)[:, None] * inv_freq.double().cpu()
    return torch.cat([angles.cos(), angles.sin()], dim=-1).float().to(device)


def rope_reference(x: torch.Tensor, positions: torch.Tensor, cos_sin: torch.Tensor) -> torch.Tensor:
    """Llama-style (rotate-half) rotary embedding of x [T, heads, D] in float32."""
    half = x.shape[-1] // 2
    cs = cos_sin[positions.long()].float()
    cos, sin = cs[:, None, :half], cs[:, None, half:]
    x1, x2 = x[..., :half].float(), x[..., half:].float()
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)


def apply_rope(
    x: torch.Tensor, positions: torch.Tensor, cos_sin: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Rotate x [T, heads, D] (queries or keys) by each token's position; out may be x."""
    if not use_triton(x):
        result = rope_reference(x, positions, cos_sin)
        return result if out is None else out.copy_(result)
    return launch_rope(x, positions, cos_sin, out)


def launch_rope(
    x: torch.Tensor, positions: torch.Tensor, cos_sin: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """The Triton path of `apply_rope`, for callers that already chose it."""
    out = torch.empty_like(x) if out is None else out
    tokens, heads, head_dim = x.shape
    half = head_dim // 2
    block_h = min(triton.next_power_of_2(heads), 16)
    _rope_kernel[(tokens, triton.cdiv(heads, block_h))](
        x,
        out,
        positions,
        cos_sin,
        heads,
        x.stride(0),
        x.stride(1),
        out.stride(0),
        out.stride(1),
        cos_sin.stride(0),
        HALF=half,
        BLOCK_H=block_h,
        BLOCK_HALF=triton.next_power_of_2(half),
    )
    return out


@triton.jit
def _silu_mul_kernel(x_ptr, out_ptr, n_cols, stride_x, stride_o, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < n_cols
    gate = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    up = tl.load(x_ptr + row * stride_x + n_cols + cols, mask=mask, other=0.0).to(tl.float32)
    silu = gate / (1.0 + tl.exp(-gate))
    tl.store(out_ptr + row * stride_o + cols, (silu * up).to(out_ptr.dtype.element_ty), mask=mask)


def silu_and_mul_reference(x: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up for x = [gate | up] along the last dim, in float32."""
    gate, up = x.float().chunk(2, dim=-1)
    return (torch.nn.functional.silu(gate) * up).to(x.dtype)


def silu_and_mul(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """silu(x[..., :I]) * x[..., I:] -> [..., I], one pass (the fused gate_up output of an MLP)."""
    if not use_triton(x):
        result = silu_and_mul_reference(x)
        return result if out is None else out.copy_(result)
    return launch_silu_and_mul(x, out)


def launch_silu_and_mul(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """The Triton path of `silu_and_mul`, for callers that already chose it."""
    n_cols = x.shape[-1] // 2
    x2 = x.reshape(-1, 2 * n_cols)
    out = torch.empty(*x.shape[:-1], n_cols, dtype=x.dtype, device=x.device) if out is None else out
    out2 = out.view(-1, n_cols)
    block = min(triton.next_power_of_2(n_cols), 1024)
    _silu_mul_kernel[(x2.shape[0], triton.cdiv(n_cols, block))](
        x2, out2, n_cols, x2.stride(0), out2.stride(0), BLOCK=block
    )
    return out
