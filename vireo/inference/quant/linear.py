"""The quantized linear layer (W8A16 / W4A16) of both the native engine and HF models.

`QuantizedLinear` runs the Triton kernels of `vireo.kernels.quant` where dispatch says so; on the
GPU (and under the Triton interpreter) it also keeps the weight re-packed for the decode kernels
(`vireo.kernels.gemv_layout`: int8 for the K-major GEMV, int4 for the tensor-core kernel).
Elsewhere it dequantizes once and calls `F.linear`. It is an `nn.Module` whose buffers
(`qweight`, `scales`, `zeros`, `bias`) are the weight, so an HF model holding it can be saved.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vireo.kernels.dispatch import interpreting, use_triton
from vireo.kernels.gemv_layout import with_kmajor, with_mma
from vireo.kernels.qweight import Int4Weight, Int8Weight, dequantize

QuantizedWeight = Int8Weight | Int4Weight


def concat_out_features(weights: list[QuantizedWeight]) -> QuantizedWeight:
    """One weight whose output features are those of `weights` in order (fused q/k/v, gate/up)."""
    first = weights[0]
    if len(weights) == 1:
        return first
    if isinstance(first, Int8Weight):
        return Int8Weight(torch.cat([w.qweight for w in weights], 1), torch.cat([w.scales for w in weights]))
    int4 = [w for w in weights if isinstance(w, Int4Weight)]
    assert len(int4) == len(weights), "fused linears share one weight format"
    return Int4Weight(
        torch.cat([w.qweight for w in int4], 1),
        torch.cat([w.scales for w in int4], 1),
        torch.cat([w.zeros for w in int4], 1),
        first.group_size,
        first.in_features,
    )


def with_decode_layout(weight: QuantizedWeight) -> QuantizedWeight:
    """The weight plus the re-packed copy the kernels' dispatcher reads at decode sizes, if the
    device's kernel table ever picks that kernel: int4 the tensor-core layout, int8 the K-major one."""
    from vireo.kernels.quant import decode_layouts_used

    int4_mma, int8_kmajor = decode_layouts_used(weight.qweight.device)
    if isinstance(weight, Int4Weight):
        return with_mma(weight) if int4_mma else weight
    return with_kmajor(weight) if int8_kmajor else weight


class QuantizedLinear(torch.nn.Module):
    """y = x @ W.T + b with an int8 (per channel) or int4 (grouped) weight. Built on the weight's
    device: move the weight, not the module."""

    bias: torch.Tensor | None  # a registered buffer (nn.Module's __getattr__ would type it Tensor | Module)

    def __init__(self, weight: QuantizedWeight, bias: torch.Tensor | None = None):
        super().__init__()
        if weight.qweight.is_cuda or interpreting():
            weight = with_decode_layout(weight)
        self.weight_q = weight
        self.out_features, self.in_features = weight.shape
        self.register_buffer("qweight", weight.qweight)
        self.register_buffer("scales", weight.scales)
        if isinstance(weight, Int4Weight):
            self.register_buffer("zeros", weight.zeros)
        self.register_buffer("bias", bias)
        self._dense: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if use_triton(x):
            from vireo.kernels.quant import launch_quantized_matmul

            out = launch_quantized_matmul(x, self.weight_q)
            return out if self.bias is None else out.add_(self.bias)
        if self._dense is None:  # no dequantizing kernel here: dequantize once, keep it
            self._dense = dequantize(self.weight_q).to(x.dtype)
        return F.linear(x, self._dense, self.bias)

    def extra_repr(self) -> str:
        group = getattr(self.weight_q, "group_size", None)
        return f"in={self.in_features}, out={self.out_features}, bits={4 if group else 8}, group_size={group}"
