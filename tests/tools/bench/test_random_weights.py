"""Random-weight models of real shapes (for GPU speed runs), checked at tiny shapes on CPU."""

import torch
from transformers import AutoTokenizer

from vireo.inference.native.worker.model_runner import ModelRunner
from vireo.inference.quant.linear import QuantizedLinear
from vireo.tools.bench.random_weights import (
    SHAPES,
    llama_config,
    native_model,
    prompt_text,
    random_hf_model,
    random_prompts,
    write_model_folder,
)

TINY = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=128,
    vocab_size=256,
    tie_word_embeddings=True,
)


def tiny_hf():
    return random_hf_model(llama_config(TINY, max_positions=128), torch.float32, "cpu")


def test_named_shapes_are_llama3_8b_and_1b():
    big, small = llama_config("llama-8b"), llama_config("llama-1b")
    assert (big.hidden_size, big.num_hidden_layers, big.intermediate_size) == (4096, 32, 14336)
    assert (small.hidden_size, small.num_hidden_layers, small.tie_word_embeddings) == (2048, 16, True)
    assert SHAPES["llama-8b"]["vocab_size"] == SHAPES["llama-1b"]["vocab_size"] == 128256


def test_native_model_runs_the_hf_models_weights():
    hf = tiny_hf()
    ids = torch.tensor(random_prompts(2, 10, TINY["vocab_size"]))
    runner = ModelRunner(native_model(hf, torch.float32), num_blocks=4, block_size=16)
    with torch.inference_mode():
        torch.testing.assert_close(runner.forward_logits(ids), hf(ids).logits, rtol=1e-5, atol=1e-5)


def test_int4_model_quantizes_every_decoder_linear_and_stays_close():
    hf = tiny_hf()
    ids = torch.tensor(random_prompts(1, 10, TINY["vocab_size"]))
    model = native_model(hf, torch.float32, quantize_bits=4, group_size=32)
    assert isinstance(model.layers[0].qkv, QuantizedLinear)
    assert "bits=4, group_size=32" in model.layers[1].down.extra_repr()  # on CPU: the int4 kernel's packed form
    with torch.inference_mode():
        logits = ModelRunner(model, 4, 16).forward_logits(ids)
        reference = hf(ids).logits
    assert (logits - reference).norm() / reference.norm() < 0.2


def test_synthetic_tokenizer_encodes_prompt_text_back_to_its_ids(tmp_path):
    folder = write_model_folder(llama_config(TINY), tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = random_prompts(1, 20, TINY["vocab_size"], seed=3)[0]
    assert tokenizer(prompt_text(ids), add_special_tokens=False)["input_ids"] == ids
    assert len(tokenizer) == TINY["vocab_size"]


def test_native_model_loads_a_vireo_quantized_folder(tmp_path):
    from vireo.inference.native.models.llama import LlamaModel
    from vireo.inference.quant.format import quantization_info
    from vireo.inference.quant.hf_model import load_quantized, save_quantized
    from vireo.inference.quant.quantize import quantize_model_

    source = write_model_folder(llama_config(TINY, max_positions=128), tmp_path / "source")
    for bits in (8, 4):
        hf = tiny_hf()
        quantize_model_(hf, "rtn", bits, group_size=32)
        folder = save_quantized(hf, tmp_path / f"w{bits}", source, quantization_info("rtn", bits, 32))
        model = LlamaModel.from_pretrained(folder)
        assert isinstance(model.layers[0].gate_up, QuantizedLinear)
        ids = torch.tensor(random_prompts(1, 10, TINY["vocab_size"]))
        with torch.inference_mode():
            ours = ModelRunner(model, 4, 16).forward_logits(ids)
            reference = load_quantized(folder)(ids).logits
        # int4 runs our int8-activation kernel on both sides; rounding an activation to int8 turns the last
        # bits in which our fused RMSNorm/RoPE/SiLU differ from PyTorch's into a step of ~1/127 of a group
        tolerance = 1e-4 if bits == 8 else 1e-2
        torch.testing.assert_close(ours, reference, rtol=tolerance, atol=tolerance)
