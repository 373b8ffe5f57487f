"""Quantized linears inside an HF transformers model: swapped in while quantizing, and loaded back
from a checkpoint folder (perplexity, the tests' reference)."""

from __future__ import annotations

from pathlib import Path

import torch

from vireo.inference.quant import calibration as calib
from vireo.inference.quant.format import load_quantized_weights, save_checkpoint
from vireo.inference.quant.linear import QuantizedLinear, QuantizedWeight
from vireo.kernels.qweight import Int4Weight, Int8Weight


def replace_linear(
    layer: torch.nn.Module, name: str, weight: QuantizedWeight, bias: torch.Tensor | None = None
) -> None:
    """Put a QuantizedLinear of `weight` where the linear `name` of `layer` is (keeping its bias
    unless one is given)."""
    parent_name, _, child = name.rpartition(".")
    parent = layer.get_submodule(parent_name) if parent_name else layer
    if bias is None and getattr(parent, child).bias is not None:
        bias = getattr(parent, child).bias.detach().clone()
    setattr(parent, child, QuantizedLinear(weight, bias))


def save_quantized(model, out_dir: Path, source_dir: Path, info: dict) -> Path:
    """Write an HF model whose decoder linears are QuantizedLinears as a checkpoint folder."""
    linears = {
        name: (m.weight_q, m.bias)
        for name, m in model.named_modules()
        if isinstance(m, QuantizedLinear) and m.weight_q is not None  # HF models hold portable weights
    }
    owned = tuple(f"{name}." for name in linears)
    floats = {k: v for k, v in model.state_dict().items() if not k.startswith(owned)}
    if getattr(model.config, "tie_word_embeddings", False):
        floats.pop("lm_head.weight", None)  # tied to the embedding, saved once
    return save_checkpoint(linears, floats, out_dir, source_dir, info)


def load_quantized(path: Path, dtype: torch.dtype = torch.float32, device="cpu"):
    """An HF causal LM whose decoder linears are QuantizedLinears, from a checkpoint folder."""
    from transformers import AutoConfig, AutoModelForCausalLM

    weights = load_quantized_weights(path, dtype, device)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path), dtype=dtype)
    for index, layer in enumerate(calib.decoder_layers(model)):
        for name in calib.layer_linears(layer):
            prefix = f"model.layers.{index}.{name}."
            weight, bias = weights.pop(prefix + "weight"), weights.pop(prefix + "bias", None)
            assert isinstance(weight, (Int8Weight, Int4Weight)) and not isinstance(bias, (Int8Weight, Int4Weight))
            replace_linear(layer, name, weight, bias)
    model.load_state_dict(weights, strict=False)
    missing = {n for n, _ in model.named_parameters()} - set(weights) - {"lm_head.weight"}
    if missing:
        raise ValueError(f"quantized checkpoint lacks {sorted(missing)[:5]}")
    model.tie_weights()
    return model.to(device).eval()
