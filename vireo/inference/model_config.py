"""A model folder's `config.json` as the local engines read it.

transformers' configuration classes import its model and generation code, and with them scikit-learn,
pandas and torch's compiler: about 290 MB resident in every engine process, for a dozen numbers. A plain
Llama or Qwen2 config with default RoPE (every model the registry ships) is read here as JSON instead;
anything else (RoPE scaling, a missing field whose default a class would supply, a random-weights
folder, which builds a transformers model on the meta device) goes through `AutoConfig`. The two agree
on every field the engine reads (tests/inference/test_model_config.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

PLAIN_ARCHITECTURES = ("LlamaForCausalLM", "Qwen2ForCausalLM")
REQUIRED = (
    "hidden_size",
    "num_attention_heads",
    "num_hidden_layers",
    "vocab_size",
    "rms_norm_eps",
    "max_position_embeddings",
)


def _rope_theta(raw: dict) -> float | None:
    """The base of default RoPE; None where the config asks for another kind (or names none)."""
    if raw.get("rope_scaling"):
        return None
    params = raw.get("rope_parameters")
    if params is not None:
        if params.get("rope_type", "default") != "default" or "rope_theta" not in params:
            return None
        return float(params["rope_theta"])
    return float(raw["rope_theta"]) if "rope_theta" in raw else None


def plain_config(raw: dict) -> SimpleNamespace | None:
    """The config as attributes when it is a plain Llama/Qwen2 one with every field the engine reads."""
    architecture = (raw.get("architectures") or [None])[0]
    theta = _rope_theta(raw)
    if architecture not in PLAIN_ARCHITECTURES or theta is None or any(key not in raw for key in REQUIRED):
        return None
    fields: dict[str, Any] = dict(raw)
    fields.setdefault("num_key_value_heads", raw["num_attention_heads"])
    fields.setdefault("head_dim", None)
    fields.setdefault("eos_token_id", None)
    fields["rope_parameters"] = {"rope_type": "default", "rope_theta": theta}
    return SimpleNamespace(**fields)


def read_model_config(folder: Path, light: bool = True):
    """The folder's config: plain JSON attributes where `plain_config` takes it (and `light`), else
    transformers' `AutoConfig`."""
    from vireo.inference.random_models import is_random_folder

    if light and not is_random_folder(folder):
        config = plain_config(json.loads((Path(folder) / "config.json").read_text()))
        if config is not None:
            return config
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(folder)
