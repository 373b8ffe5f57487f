"""The one quantized checkpoint format: vLLM's AWQ (int4) and GPTQ (int8) layouts, read back exactly."""

import json

import pytest
import torch

from vireo.inference.quant import vllm_layout
from vireo.inference.quant.format import load_quantized_weights, quantization_info, read_info, save_checkpoint
from vireo.inference.quant.rtn import quantize_weight


@pytest.mark.parametrize("n,k,group", [(64, 576, 128), (40, 100, 32), (32, 256, 64)])
def test_int4_awq_layout_round_trips_exactly(n, k, group):
    w = quantize_weight(torch.randn(n, k), 4, group)
    back = vllm_layout.int4_from_awq(vllm_layout.int4_to_awq(w), group)
    assert torch.equal(back.qweight, w.qweight) and torch.equal(back.zeros, w.zeros)
    assert torch.equal(back.scales, w.scales) and back.in_features == k


def test_awq_packs_columns_in_awq_order():
    q = torch.arange(8, dtype=torch.uint8).repeat(2, 1)  # column c holds c
    word = vllm_layout._pack_columns(q)[0, 0].item() & 0xFFFFFFFF
    assert [(word >> (4 * j)) & 0xF for j in range(8)] == [0, 2, 4, 6, 1, 3, 5, 7]


def test_int8_gptq_layout_round_trips_exactly():
    w = quantize_weight(torch.randn(48, 96), 8, 0)
    tensors = vllm_layout.int8_to_gptq(w)
    back = vllm_layout.int8_from_gptq(tensors)
    assert torch.equal(back.qweight, w.qweight) and torch.equal(back.scales, w.scales)
    assert ((tensors["qweight"][0, 0] & 0xFF) - 128).item() == w.qweight[0, 0].item()


def _save(tmp_path, bits, group, k=96):
    source = tmp_path / "source"
    source.mkdir()
    (source / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    weight = quantize_weight(torch.randn(32, k), bits, group)
    info = quantization_info("rtn", bits, group)
    folder = save_checkpoint(
        {"model.layers.0.mlp.down_proj": (weight, None)},
        {"model.norm.weight": torch.ones(32)},
        tmp_path / "out",
        source,
        info,
    )
    return folder, weight


def test_folder_carries_the_quantization_config_vllm_reads(tmp_path):
    folder, weight = _save(tmp_path, 4, 32)
    config = json.loads((folder / "config.json").read_text())["quantization_config"]
    assert config == json.loads((folder / "quantize_config.json").read_text())
    assert config["quant_method"] == "awq" and config["group_size"] == 32
    loaded = load_quantized_weights(folder, torch.float32)
    assert torch.equal(loaded["model.layers.0.mlp.down_proj.weight"].qweight, weight.qweight)


def test_folder_says_when_vllm_cannot_load_it(tmp_path):
    folder, _ = _save(tmp_path, 4, 64, k=96)  # 96 is not a multiple of 64
    assert "divisible" in read_info(folder)["vllm"]


def test_a_folder_of_the_old_format_is_refused_with_what_to_do(tmp_path):
    folder, _ = _save(tmp_path, 8, 0)
    info = json.loads((folder / "quantization.json").read_text())
    (folder / "quantization.json").write_text(json.dumps({**info, "format_version": 1}))
    with pytest.raises(ValueError, match="vireo quantize"):
        load_quantized_weights(folder, torch.float32)
