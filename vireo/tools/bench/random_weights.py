"""Models of a real architecture's shape with random weights, built in memory where they run.

For speed measurements on machines that cannot receive checkpoints: an HF `LlamaForCausalLM`
initialised by transformers (normal, std = initializer_range) directly on the target device,
whose state dict also feeds our native `LlamaModel`, so both run the same weights. The
tokenizer is synthetic: one word per id ("t0" ... "tN"), enough for the engines' text paths.
"""

from __future__ import annotations

from pathlib import Path

import torch

SHAPES = {
    "llama-8b": dict(
        hidden_size=4096,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        intermediate_size=14336,
        vocab_size=128256,
        tie_word_embeddings=False,
        rope_theta=500000.0,
    ),
    "llama-1b": dict(
        hidden_size=2048,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        intermediate_size=8192,
        vocab_size=128256,
        tie_word_embeddings=True,
        rope_theta=500000.0,
    ),
}


def llama_config(shape: str | dict, max_positions: int = 8192):
    """A LlamaConfig of a named shape (`SHAPES`) or of explicit dimensions; no EOS token,
    so generation always runs to its token budget."""
    from transformers import LlamaConfig

    dims = SHAPES[shape] if isinstance(shape, str) else shape
    return LlamaConfig(
        **dims,
        max_position_embeddings=max_positions,
        rms_norm_eps=1e-5,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=0,
        architectures=["LlamaForCausalLM"],
    )


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


def write_model_folder(config, folder: Path) -> Path:
    """config.json and a synthetic word-per-id tokenizer: what `LocalEngine` reads from a folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    folder = Path(folder)
    config.save_pretrained(folder)
    vocab = {f"t{i}": i for i in range(config.vocab_size)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="t0"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    PreTrainedTokenizerFast(tokenizer_object=core, unk_token="t0", pad_token="t0").save_pretrained(folder)
    return folder


def random_prompts(count: int, length: int, vocab: int, seed: int = 0) -> list[list[int]]:
    """`count` distinct prompts of `length` random token ids (no shared prefix)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(1, vocab, (count, length), generator=generator).tolist()


def prompt_text(ids: list[int]) -> str:
    """The synthetic tokenizer's text for `ids` (it encodes back to exactly these ids)."""
    return " ".join(f"t{i}" for i in ids)
