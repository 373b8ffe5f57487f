"""Models of a real architecture's shape with random weights, built in memory where they run (the
shapes, config and synthetic tokenizer are the runtime's: vireo/inference/random_models.py).

For speed measurements on machines that cannot receive checkpoints: an HF `LlamaForCausalLM`
initialised by transformers (normal, std = initializer_range) directly on the target device,
whose state dict also feeds our native `LlamaModel`, so both run the same weights. The
tokenizer is synthetic: one word per id ("t0" ... "tN"), enough for the engines' text paths.
"""

from __future__ import annotations

import torch

from vireo.inference.random_models import SHAPES, llama_config, write_model_folder

__all__ = ["SHAPES", "llama_config", "write_model_folder", "random_hf_model", "native_model", "quantize_linears"]


def random_hf_model(config, dtype: torch.dtype, device: str | torch.device, seed: int = 0):
    """An HF Llama with transformers' own random initialisation, made on `device`."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()


def native_model(
    hf_model, dtype: torch.dtype, batch_hint: int = 32, quantize_bits: int | None = None, group_size: int = 128
):
    """Our `LlamaModel` over the HF model's weights (optionally round-to-nearest int8/int4)."""
    from vireo.inference.native.models.llama import LlamaModel

    weights = dict(hf_model.state_dict())
    if quantize_bits:
        weights = quantize_linears(weights, quantize_bits, group_size)
    device = next(hf_model.parameters()).device
    return LlamaModel(hf_model.config, weights, dtype, batch_hint, device)


def quantize_linears(weights: dict, bits: int, group_size: int = 128) -> dict:
    """The decoder linears as Int8Weight / Int4Weight (RTN, `vireo quantize --method rtn`)."""
    from vireo.inference.quant.rtn import quantize_weight

    linear = (
        ".self_attn.q_proj.weight",
        ".self_attn.k_proj.weight",
        ".self_attn.v_proj.weight",
        ".self_attn.o_proj.weight",
        ".mlp.gate_proj.weight",
        ".mlp.up_proj.weight",
        ".mlp.down_proj.weight",
    )
    return {name: quantize_weight(w, bits, group_size) if name.endswith(linear) else w for name, w in weights.items()}


def random_prompts(count: int, length: int, vocab: int, seed: int = 0) -> list[list[int]]:
    """`count` distinct prompts of `length` random token ids (no shared prefix)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(1, vocab, (count, length), generator=generator).tolist()


def prompt_text(ids: list[int]) -> str:
    """The synthetic tokenizer's text for `ids` (it encodes back to exactly these ids)."""
    return " ".join(f"t{i}" for i in ids)
