"""Models of a real architecture's shape with random weights: `random:llama-8b`, `random:llama-1b`, `random:tiny`.

For speed measurements, and for running the whole stack, on machines that no checkpoint can reach (a
lent GPU has no hub and a 16 GB upload is out of reach). The registry writes a folder with the shape's
`config.json`, a synthetic tokenizer (one word per id: "t0" ... "tN") and a marker file, and no weight
files; the native engine makes the weights on its own device from a fixed seed, so every process that
serves the name (a worker, a benchmark's engine alone) runs the very same weights. The config has no
end-of-sequence token: generation always runs to its token budget, as speed measurements want.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch only where weights are made: the API process imports the registry, not torch
    import torch

PREFIX = "random:"
MARKER = "vireo-random-weights.json"  # {"shape": ..., "seed": ...}: the weights are made at load
SHAPES: dict[str, dict] = {
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
    # small enough for CPU tests of the path itself
    "tiny": dict(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        vocab_size=512,
        tie_word_embeddings=True,
        rope_theta=10000.0,
    ),
}


def is_random_name(name: str) -> bool:
    return name.startswith(PREFIX)


def llama_config(shape: str | dict, max_positions: int = 8192):
    """A LlamaConfig of a named shape (`SHAPES`) or of explicit dimensions; no EOS token, so generation
    always runs to its token budget."""
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


def write_model_folder(config, folder: Path) -> Path:
    """config.json and a synthetic word-per-id tokenizer: what a local engine reads from a folder."""
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


def prepare(name: str, models_dir: Path, seed: int = 0) -> Path:
    """The folder that serves `random:<shape>` (written once; no weights in it)."""
    shape = name.removeprefix(PREFIX)
    if shape not in SHAPES:
        raise ValueError(f"no random model shape {shape!r}; known: {', '.join(PREFIX + s for s in SHAPES)}")
    folder = Path(models_dir) / f"random-{shape}"
    marker = {"shape": shape, "seed": seed}
    if not (folder / MARKER).exists() or json.loads((folder / MARKER).read_text()) != marker:
        write_model_folder(llama_config(shape), folder)
        (folder / MARKER).write_text(json.dumps(marker))
    return folder


def is_random_folder(folder: Path) -> bool:
    return (Path(folder) / MARKER).exists()


def random_weights(
    folder: Path, hf_config, dtype: torch.dtype, device: str | torch.device, keep: Callable | None = None
) -> dict[str, torch.Tensor]:
    """The model's weights, made on `device` from the folder's seed: normal(0, initializer_range) for
    matrices and embeddings, ones for norms (transformers' own initialisation of a Llama). `keep(name,
    tensor)` returns the part to hold (a tensor-parallel rank's shard), made one tensor at a time."""
    import torch
    from transformers import AutoModelForCausalLM

    seed = json.loads((Path(folder) / MARKER).read_text())["seed"]
    with torch.device("meta"):
        shapes = {name: p.shape for name, p in AutoModelForCausalLM.from_config(hf_config).named_parameters()}
    generator = torch.Generator(device=device).manual_seed(seed)
    std = getattr(hf_config, "initializer_range", 0.02)
    weights = {}
    for name, shape in shapes.items():  # named_parameters: a tied lm_head is the embedding, listed once
        if name.endswith("norm.weight"):
            weight = torch.ones(shape, dtype=dtype, device=device)
        else:
            weight = (torch.randn(shape, generator=generator, device=device) * std).to(dtype)
        weights[name] = weight if keep is None else keep(name, weight)
    return weights
