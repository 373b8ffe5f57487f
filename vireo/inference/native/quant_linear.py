"""Weight-only quantized linears for the native engine (W8A16 / W4A16, `docs/quantization.md`).

A Vireo quantized folder (`vireo quantize`) stores each decoder linear as qweight/scales[/zeros];
`load_quantized_weights` returns them as `Int8Weight` / `Int4Weight` under the linear's
`.weight` name, so the model fuses q/k/v and gate/up the same way for float and quantized
checkpoints (`concat_out_features`). `QuantizedLinear` runs the Triton kernels of
`vireo.kernels.quant` where dispatch says so (on the GPU a weight is also kept re-packed for the
decode kernels, `vireo.kernels.gemv_layout`: int8 for the GEMV, int4 for the tensor-core kernel);
elsewhere it dequantizes once and uses `F.linear`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from vireo.kernels.dispatch import interpreting, use_triton
from vireo.kernels.gemv_layout import with_kmajor, with_mma
from vireo.kernels.qweight import Int4Weight, Int8Weight, dequantize

QuantizedWeight = Int8Weight | Int4Weight
WEIGHTS_FILE = "vireo-quantized.safetensors"
INFO_FILE = "quantization.json"


def is_quantized_folder(folder: Path) -> bool:
    return (Path(folder) / INFO_FILE).exists()


def load_quantized_weights(folder: Path, dtype: torch.dtype,
                           hf_config) -> dict[str, torch.Tensor | QuantizedWeight]:
    """Float tensors cast to `dtype`; every quantized linear as one weight object under `.weight`."""
    from safetensors.torch import load_file

    folder = Path(folder)
    info = json.loads((folder / INFO_FILE).read_text())
    state = load_file(folder / WEIGHTS_FILE)
    weights: dict = {}
    for name in [n for n in state if n.endswith(".qweight")]:
        prefix = name[: -len("qweight")]
        weights[prefix + "weight"] = _quantized(state, prefix, info, _in_features(prefix, hf_config))
    for name, tensor in state.items():
        if not name.endswith((".qweight", ".scales", ".zeros")):
            weights[name] = tensor.to(dtype)
    return weights


def _in_features(prefix: str, hf_config) -> int:
    """K of a decoder linear (int4 files store it padded to a multiple of 8)."""
    if prefix.endswith("down_proj."):
        return hf_config.intermediate_size
    if prefix.endswith("o_proj."):
        head_dim = getattr(hf_config, "head_dim", None) or \
            hf_config.hidden_size // hf_config.num_attention_heads
        return hf_config.num_attention_heads * head_dim
    return hf_config.hidden_size


def _quantized(state: dict, prefix: str, info: dict, in_features: int) -> QuantizedWeight:
    if info["bits"] == 8:
        return Int8Weight(state[prefix + "qweight"], state[prefix + "scales"])
    return Int4Weight(state[prefix + "qweight"], state[prefix + "scales"], state[prefix + "zeros"],
                      info["group_size"], in_features)


def concat_out_features(weights: list[QuantizedWeight]) -> QuantizedWeight:
    """One weight whose output features are those of `weights` in order (fused q/k/v, gate/up)."""
    first = weights[0]
    if isinstance(first, Int8Weight):
        return Int8Weight(torch.cat([w.qweight for w in weights], 1),
                          torch.cat([w.scales for w in weights]))
    return Int4Weight(torch.cat([w.qweight for w in weights], 1),
                      torch.cat([w.scales for w in weights], 1),
                      torch.cat([w.zeros for w in weights], 1), first.group_size, first.in_features)


def _with_decode_layout(weight: QuantizedWeight) -> QuantizedWeight:
    """The weight plus the re-packed copy the kernels' dispatcher reads at decode sizes, if any:
    int4 the tensor-core layout (M 2..8), int8 the K-major GEMV layout (M = 1)."""
    from vireo.kernels.quant import KMAJOR_GEMV_MAX_M, MMA_M_RANGE

    if isinstance(weight, Int4Weight):
        return with_mma(weight) if MMA_M_RANGE[1] > 0 else weight
    return with_kmajor(weight) if KMAJOR_GEMV_MAX_M[8] > 0 else weight


class QuantizedLinear:
    """y = x @ W.T + b with an int8 or int4 weight (Triton kernel, or a dense fallback)."""

    def __init__(self, weight: QuantizedWeight, bias: torch.Tensor | None = None):
        if weight.qweight.is_cuda or interpreting():
            weight = _with_decode_layout(weight)
        self.weight_q, self.bias = weight, bias
        self.out_features, self.in_features = weight.shape
        self._dense: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if use_triton(x):
            from vireo.kernels.quant import w4a16_matmul, w8a16_matmul

            matmul = w4a16_matmul if isinstance(self.weight_q, Int4Weight) else w8a16_matmul
            out = matmul(x, self.weight_q)
            return out if self.bias is None else out.add_(self.bias)
        if self._dense is None:  # no dequantizing kernel here: dequantize once, keep it
            self._dense = dequantize(self.weight_q).to(x.dtype)
        return F.linear(x, self._dense, self.bias)
