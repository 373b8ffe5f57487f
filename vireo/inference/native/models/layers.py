"""The model's building blocks as small functions, so a GPU build can swap in its own kernels.

On CPU in float32, linear weights are pre-packed once for oneDNN (the blocked layout its GEMM
wants), which on this class of machine runs the skinny decode matmuls about 1.5-2x faster than
`F.linear`'s MKL path; anything else (CUDA, bf16 on CPUs without AVX-512) uses `F.linear`.
Where `vireo.kernels.dispatch.use_triton` says so (CUDA tensors, or forced under the Triton
interpreter), norms, SiLU-and-mul and RoPE run the fused Triton kernels of `vireo.kernels.fused`,
and decode-size linears (at most `dense_gemv.MAX_M` rows, 16-bit weights) the one-launch
GEMV of `vireo.kernels.dense_gemv` instead of cuBLAS (the engine setting `dense_gemv`,
`VIREO_DENSE_GEMV=0`, turns that off, for side-by-side timing).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vireo.kernels import cpu_decode_ops
from vireo.kernels.dispatch import use_triton

_HALF = (torch.bfloat16, torch.float16)


def _pack_for_onednn(weight: torch.Tensor, batch_hint: int) -> torch.Tensor | None:
    if weight.device.type != "cpu" or weight.dtype != torch.float32:
        return None
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._reorder_linear_weight(weight, batch_hint)
    except (RuntimeError, AttributeError):  # op missing or CPU lacks the needed ISA
        return None


class Linear:
    """y = x @ W.T + b over a 2-D input; dispatches to the fastest path for the weight's device."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None = None,
        batch_hint: int = 32,
        keep_weight: bool = False,
        dense_gemv: bool = True,
    ):
        self.out_features, self.in_features = weight.shape
        self.bias = bias
        self.dense_gemv = dense_gemv
        self.packed = _pack_for_onednn(weight, batch_hint)
        self.weight = weight if (self.packed is None or keep_weight) else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is not None and x.device.type == "cpu" and x.shape[0] > 0:
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
        weight = self.weight
        if weight is None:
            raise RuntimeError("this Linear was packed for CPU only")
        if self._takes_dense_gemv(x, weight):
            from vireo.kernels.dense_gemv import dense_gemv

            return dense_gemv(x, weight, self.bias)
        return F.linear(x, weight, self.bias)

    def _takes_dense_gemv(self, x: torch.Tensor, weight: torch.Tensor) -> bool:
        """16-bit decode-size input on the Triton path (the cheap checks first: this is per call)."""
        if not self.dense_gemv or x.dtype not in _HALF or x.dtype != weight.dtype:
            return False
        from vireo.kernels.dense_gemv import MAX_M  # triton loads only where 16-bit linears run

        return x.shape[0] <= MAX_M and use_triton(x)


class ConcatLinear:
    """Linears over the same input whose outputs are concatenated: a fused projection whose parts
    come in different formats (a GGUF file's int4 q/k beside an int8 v)."""

    def __init__(self, parts: list):
        self.parts = parts
        self.out_features = sum(p.out_features for p in parts)
        self.in_features = parts[0].in_features

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([part(x) for part in self.parts], dim=-1)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    if use_triton(x):
        from vireo.kernels import fused

        return fused.launch_rms_norm(x, weight, eps)
    if x.dim() == 2 and x.is_contiguous() and (ops := cpu_decode_ops.for_rows(x)) is not None:
        return ops.rms_norm(x, weight, eps)
    return F.rms_norm(x, (x.shape[-1],), weight, eps)


def add_rms_norm(
    x: torch.Tensor, residual: torch.Tensor | None, weight: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Add the block output to the residual stream, then normalise it (one kernel on the GPU)."""
    if residual is not None and use_triton(x):
        from vireo.kernels import fused

        return fused.launch_rms_norm(x, weight, eps, residual=residual, residual_out=residual)
    if residual is not None and x.is_contiguous() and residual.is_contiguous() and x.dim() == 2:
        if (ops := cpu_decode_ops.for_rows(x)) is not None:
            return ops.add_rms_norm(x, residual, weight, eps), residual  # the add done in place
    residual = x if residual is None else residual.add_(x)
    return rms_norm(residual, weight, eps), residual


def silu_and_mul(gate_up: torch.Tensor) -> torch.Tensor:
    if use_triton(gate_up):
        from vireo.kernels import fused

        return fused.launch_silu_and_mul(gate_up)
    if gate_up.dim() == 2 and gate_up.is_contiguous() and (ops := cpu_decode_ops.for_rows(gate_up)) is not None:
        return ops.silu_mul(gate_up)
    half = gate_up.shape[-1] // 2
    return F.silu(gate_up[:, :half]) * gate_up[:, half:]


def rotary_tables(
    inv_freq: torch.Tensor, max_positions: int, scaling: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin [max_positions, head_dim/2], computed in float32 like the reference."""
    positions = torch.arange(max_positions, dtype=torch.float32)
    freqs = torch.outer(positions, inv_freq.float())
    return (freqs.cos() * scaling).to(dtype), (freqs.sin() * scaling).to(dtype)


def rotary_cos_sin(inv_freq: torch.Tensor, max_positions: int, scaling: float) -> torch.Tensor:
    """The fused kernel's float32 table [max_positions, head_dim]: cos, then sin."""
    freqs = torch.outer(torch.arange(max_positions, dtype=torch.float32), inv_freq.float())
    return torch.cat([freqs.cos() * scaling, freqs.sin() * scaling], dim=-1)


def rotate_in_place(x: torch.Tensor, positions: torch.Tensor, cos_sin: torch.Tensor) -> torch.Tensor:
    """Kernel RoPE on x [tokens, heads, head_dim] (a view into the qkv output), in place; the
    model chose the kernel path once for the forward (`RopeInputs`)."""
    from vireo.kernels import fused

    return fused.launch_rope(x, positions, cos_sin, out=x)


def rotate_tables_in_place(
    x: torch.Tensor, positions: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> torch.Tensor | None:
    """Rotate-half RoPE on x [tokens, heads, head_dim] (a view into the qkv output) in place, with the
    whole cos/sin tables [max_positions, head_dim/2] (our CPU kernel); None where it cannot run."""
    ops = cpu_decode_ops.for_rows(x)
    if ops is None or cos.dtype != torch.float32:
        return None
    return ops.rope(x, positions, cos, sin, x.shape[1])


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE on [tokens, heads, head_dim] with cos/sin [tokens, 1, head_dim/2]."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)
