"""Quantized SmolLM2 checkpoints: still a language model after save and reload."""

import copy

import torch

from vireo.inference.quant import calibration as calib
from vireo.inference.quant.format import quantization_info
from vireo.inference.quant.hf_model import load_quantized, save_quantized
from vireo.inference.quant.linear import QuantizedLinear
from vireo.inference.quant.quantize import _gptq_layer, _rtn_layer, quantize_model_
from vireo.tools.evals.quantization import heldout_text, perplexity


def test_int8_checkpoint_round_trip_keeps_perplexity_and_generates(fp32_model, tokenizer, smollm2_path, tmp_path):
    text = heldout_text()
    base = perplexity(fp32_model, tokenizer, text, max_tokens=512)
    quantize_model_(fp32_model, "rtn", bits=8)
    save_quantized(fp32_model, tmp_path, smollm2_path, quantization_info("rtn", 8, 0))
    model = load_quantized(tmp_path)
    assert isinstance(model.model.layers[0].self_attn.q_proj, QuantizedLinear)
    assert perplexity(model, tokenizer, text, max_tokens=512) < 1.05 * base
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > ids.shape[1]
    assert tokenizer.decode(out[0, ids.shape[1] :]).strip()


def test_int4_model_perplexity_does_not_explode(fp32_model, tokenizer):
    text = heldout_text()
    base = perplexity(fp32_model, tokenizer, text, max_tokens=512)
    quantize_model_(fp32_model, "rtn", bits=4, group_size=64)
    assert perplexity(fp32_model, tokenizer, text, max_tokens=512) < 1.5 * base


@torch.no_grad()
def test_gptq_layer_output_closer_than_rtn_on_real_activations(fp32_model, tokenizer):
    ids = calib.calibration_windows(tokenizer, samples=4, seq_len=128)
    inputs = calib.first_layer_inputs(fp32_model, ids, batch_size=4)
    layer = fp32_model.model.layers[0]
    reference = calib.run_layer(layer, inputs)[0]
    rtn, gptq = copy.deepcopy(layer), copy.deepcopy(layer)
    _rtn_layer(rtn, 4, 64)
    _gptq_layer(gptq, inputs, 4, 64)
    err = {
        name: (calib.run_layer(layer, inputs)[0] - reference).norm().item()
        for name, layer in (("rtn", rtn), ("gptq", gptq))
    }
    assert err["gptq"] < err["rtn"]
