"""Round to nearest: int8 symmetric per output channel, int4 asymmetric per group (the kernels'
reference quantizers, `vireo.kernels.qweight`), with int4 scales stored as float16."""

from __future__ import annotations

import re

import torch

from vireo.kernels.qweight import Int4Weight, Int8Weight, quantize_int4, quantize_int8


def quantize_weight(weight: torch.Tensor, bits: int, group_size: int) -> Int8Weight | Int4Weight:
    """RTN of an nn.Linear weight [N, K]."""
    if bits == 8:
        return quantize_int8(weight)
    return quantize_int4(weight, group_size).to(scale_dtype=torch.float16)


QUANTIZED_LINEAR = re.compile(r"model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.weight")  # as `vireo quantize`


def quantize_linears(weights: dict[str, torch.Tensor], bits: int, group_size: int = 128) -> dict:
    """A model's float weights with the decoder's linears replaced by RTN int8/int4 weights (the
    modules `vireo quantize` quantizes), for serving a plain model quantized at load."""
    return {
        name: quantize_weight(w, bits, group_size) if QUANTIZED_LINEAR.fullmatch(name) else w
        for name, w in weights.items()
    }
