"""Activation-aware weight scaling (AWQ, Lin et al. 2023), then round-to-nearest.

Input channels that see large activations matter more. For linears sharing one input, search
s = mean|x|^alpha (alpha on a grid in [0, 1]) minimizing ||X W^T - X (Q(W diag(s)) diag(s)^-1)^T||,
then fold 1/s into the op producing X (the RMSNorm weight, or the rows of up_proj for down_proj)
and s into the weights, so the quantized model needs no extra runtime op. o_proj is left
unscaled when v_proj's output width differs from its input (GQA), as in the reference code.
"""

from __future__ import annotations

import torch

from vireo.kernels.qweight import INT8_MAX, groups_of, int4_round, int4_scale_zero

GRID = 20
MAX_TOKENS = 2048  # tokens of X used to score a candidate scale


def fake_quantize(weight: torch.Tensor, bits: int, group_size: int) -> torch.Tensor:
    """Q(W) as a float weight: RTN round trip, without packing."""
    if bits == 8:
        scale = (weight.abs().amax(dim=1, keepdim=True) / INT8_MAX).clamp(min=1e-8)
        return torch.clamp(torch.round(weight / scale), -INT8_MAX, INT8_MAX) * scale
    grouped = groups_of(weight, group_size)
    scale, zero = int4_scale_zero(grouped)
    q = int4_round(grouped, scale[..., None], zero[..., None])
    return ((q - zero[..., None]) * scale[..., None]).flatten(1)[:, : weight.shape[1]]


def search_scale(x: torch.Tensor, weights: list[torch.Tensor], bits: int, group_size: int) -> torch.Tensor:
    """The per-input-channel scale s [K] minimizing the quantized output error on x [T, K]."""
    x = x[:MAX_TOKENS].float()
    w = torch.cat([wt.float() for wt in weights])
    reference = x @ w.t()
    mean_abs = x.abs().mean(dim=0)
    best, best_err = torch.ones_like(mean_abs), float("inf")
    for i in range(GRID):
        s = mean_abs.pow(i / GRID).clamp(min=1e-4)
        s = s / (s.max() * s.min()).sqrt()
        err = (x @ (fake_quantize(w * s, bits, group_size) / s).t() - reference).pow(2).mean().item()
        if err < best_err:
            best, best_err = s, err
    return best


@torch.no_grad()
def fold_scale(scale: torch.Tensor, producer: torch.nn.Module, consumers: list[torch.nn.Linear]):
    """Divide the producer's output channels by s and multiply the consumers' inputs by s."""
    if isinstance(producer, torch.nn.Linear):
        producer.weight.div_(scale[:, None].to(producer.weight.dtype))
        if producer.bias is not None:
            producer.bias.div_(scale.to(producer.bias.dtype))
    else:  # an RMSNorm: its weight multiplies each channel of the output
        norm_weight = producer.weight
        assert isinstance(norm_weight, torch.Tensor)  # nn.Module's __getattr__ types it Tensor | Module
        norm_weight.div_(scale.to(norm_weight.dtype))
    for linear in consumers:
        linear.weight.mul_(scale[None, :].to(linear.weight.dtype))


def scaling_groups(layer) -> list[tuple[torch.nn.Module, list[torch.nn.Linear], str]]:
    """(producer, consumers sharing its output, name of the consumer whose input is X)."""
    attn, mlp = layer.self_attn, layer.mlp
    groups = [
        (layer.input_layernorm, [attn.q_proj, attn.k_proj, attn.v_proj], "self_attn.q_proj"),
        (layer.post_attention_layernorm, [mlp.gate_proj, mlp.up_proj], "mlp.gate_proj"),
        (mlp.up_proj, [mlp.down_proj], "mlp.down_proj"),
    ]
    if attn.v_proj.out_features == attn.o_proj.in_features:
        groups.append((attn.v_proj, [attn.o_proj], "self_attn.o_proj"))
    return groups


def awq_scale_layer(layer, inputs: dict[str, torch.Tensor], bits: int, group_size: int) -> None:
    """Search and fold the scales of one decoder layer, given each linear's recorded input."""
    for producer, consumers, x_name in scaling_groups(layer):
        scale = search_scale(inputs[x_name], [c.weight for c in consumers], bits, group_size)
        fold_scale(scale.to(consumers[0].weight.device), producer, consumers)
