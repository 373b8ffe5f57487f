"""The native decoder matches transformers on small random Llama and Qwen2 checkpoints."""

import pytest
import torch

from vireo.inference.native.models.llama import LlamaModel
from vireo.inference.native.worker.model_runner import ModelRunner


def tiny_checkpoint(folder, family: str):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    shape = dict(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    if family == "qwen2":  # q/k/v biases, tied embeddings, Qwen's rope base
        model = Qwen2ForCausalLM(
            Qwen2Config(**shape, tie_word_embeddings=True, rope_parameters={"rope_type": "default", "rope_theta": 1e6})
        )
    else:
        model = LlamaForCausalLM(LlamaConfig(**shape, tie_word_embeddings=False))
    model.save_pretrained(folder)
    return model.eval()


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_logits_match_transformers(tmp_path, family):
    reference = tiny_checkpoint(tmp_path, family)
    ours = ModelRunner(LlamaModel.from_pretrained(tmp_path), num_blocks=8, block_size=16)
    ids = torch.randint(0, 512, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = reference(input_ids=ids).logits
        got = ours.forward_logits(ids)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
