"""The quantized linear layer (W8A16 / W4A16) of both the native engine and HF models.

`QuantizedLinear` runs the Triton kernels of `vireo.kernels.quant` where dispatch says so; on the
GPU (and under the Triton interpreter) it also keeps the weight re-packed for the decode kernels
(`vireo.kernels.gemv_layout`: int8 for the K-major GEMV, int4 for the tensor-core kernel).
On CPU it runs our AVX2 int8-activation kernels where they build, else PyTorch's weight-only
int4 / int8 kernels (`vireo.kernels.cpu_quant`), over the weight in their packed form: given a
portable `Int4Weight` / `Int8Weight` (an HF model being quantized or evaluated) it packs a copy and
keeps the original, whose buffers (`qweight`, `scales`, `zeros`, `bias`) let the model be saved;
given the CPU form itself (the native engine, which never saves) it holds only that. Where the
kernels cannot hold a shape it dequantizes once and calls `F.linear`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vireo.kernels.cpu_quant import (
    CpuGgufWeight,
    CpuInt4DotWeight,
    CpuInt4Weight,
    CpuInt8Weight,
    CpuWeight,
    for_cpu_kernels,
)
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

    def __init__(self, weight: QuantizedWeight | CpuWeight, bias: torch.Tensor | None = None):
        super().__init__()
        self.weight_q: QuantizedWeight | None = None  # the portable weight (what `save_quantized` writes)
        self.cpu_weight = None  # the CPU kernels' packed form (setting it binds the decode kernel)
        if isinstance(weight, (CpuInt4Weight, CpuInt4DotWeight, CpuInt8Weight, CpuGgufWeight)):
            self.cpu_weight = weight
        else:
            if weight.qweight.is_cuda or interpreting():
                weight = with_decode_layout(weight)
            self.weight_q = weight
            self.register_buffer("qweight", weight.qweight)
            self.register_buffer("scales", weight.scales)
            if isinstance(weight, Int4Weight):
                self.register_buffer("zeros", weight.zeros)
            if not weight.qweight.is_cuda:
                self.cpu_weight = for_cpu_kernels(weight)
        self.out_features, self.in_features = weight.shape
        self.register_buffer("bias", bias)
        self._dense: torch.Tensor | None = None

    @property
    def cpu_weight(self) -> CpuWeight | None:
        return self._cpu_weight

    @cpu_weight.setter
    def cpu_weight(self, weight: CpuWeight | None) -> None:
        """The CPU kernels' form, with the decode path bound to it: its kernel and operands, called as is for
        float32 x [M, K] of M < `_decode_rows` (at one token a step the call is ~15 us, and `matmul`'s choosing
        of a path ~13 us more)."""
        self._cpu_weight = weight
        self._decode = None if weight is None else weight.decode_kernel()
        self._decode_rows = 0 if weight is None else weight.dense_from_rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        decode = self._decode
        if (
            decode is not None
            and x.dim() == 2
            and x.shape[0] < self._decode_rows
            and x.dtype == torch.float32
            and not use_triton(x)  # tests force Triton on CPU tensors
        ):
            out, bias = decode(x), self._buffers["bias"]  # not through nn.Module.__getattr__: ~1 us a call
            return out if bias is None else out.add_(bias)
        if use_triton(x):
            from vireo.kernels.quant import launch_quantized_matmul

            assert self.weight_q is not None, "the CPU-only packed form has no GPU kernel"
            out = launch_quantized_matmul(x, self.weight_q)
            return out if self.bias is None else out.add_(self.bias)
        if self.cpu_weight is not None and x.device.type == "cpu":
            out = self.cpu_weight.matmul(x.reshape(-1, self.in_features)).view(*x.shape[:-1], self.out_features)
            return out if self.bias is None else out.add_(self.bias)
        if self._dense is None:  # no kernel for this weight here: dequantize once, keep it
            self._dense = self._dequantized().to(x.dtype)
        return F.linear(x, self._dense, self.bias)

    # called as a function: nn.Module.__call__'s hook checks cost ~2 us a call, per linear per decode step
    __call__ = forward

    def _dequantized(self) -> torch.Tensor:
        if self.weight_q is not None:
            return dequantize(self.weight_q)
        raise RuntimeError("a CPU-packed QuantizedLinear runs on CPU tensors only")

    def weight_nbytes(self) -> int:
        """Bytes of the weight a matmul reads: the portable tensors, else the CPU kernels' form."""
        if self.weight_q is not None:
            w = self.weight_q
            tensors = [w.qweight, w.scales] + ([w.zeros] if isinstance(w, Int4Weight) else [])
            return sum(t.numel() * t.element_size() for t in tensors)
        assert self.cpu_weight is not None
        return self.cpu_weight.nbytes()

    def extra_repr(self) -> str:
        weight = self.weight_q if self.weight_q is not None else self.cpu_weight
        group = getattr(weight, "group_size", None)
        kernel = "" if self.cpu_weight is None else ", cpu_kernel=True"
        if isinstance(weight, CpuGgufWeight):
            return f"in={self.in_features}, out={self.out_features}, gguf={weight.block_type}{kernel}"
        return f"in={self.in_features}, out={self.out_features}, bits={4 if group else 8}, group_size={group}{kernel}"
