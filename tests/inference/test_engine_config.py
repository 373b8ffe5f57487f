"""EngineConfig: `auto` made concrete for the machine, settings this machine cannot honour refused
before any weights load, and int8/int4 at load for a plain model (issue #16)."""

from __future__ import annotations

import pytest
import torch

from vireo.inference.api import EngineError, GenerationRequest, SamplingParams
from vireo.inference.engine_config import EngineConfig
from vireo.inference.factory import create_engine

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="asserts what a machine without CUDA does")


@no_gpu
def test_auto_is_the_cpu_in_float32_without_cuda():
    config = EngineConfig().resolved()
    assert (config.device, config.dtype, config.overlap_decode) == ("cpu", "float32", False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="asserts what a CUDA machine does")
def test_auto_is_cuda_in_bfloat16_with_overlap_on_a_gpu():
    config = EngineConfig().resolved()
    assert (config.device, config.dtype, config.overlap_decode) == ("cuda", "bfloat16", True)


def test_an_explicit_dtype_and_overlap_are_kept():
    config = EngineConfig(device="cpu", dtype="bfloat16", overlap_decode=True).resolved()
    assert (config.dtype, config.overlap_decode) == ("bfloat16", True)


def test_the_step_budget_is_512_tokens_on_a_cpu_unless_set():
    assert EngineConfig(device="cpu").resolved().max_tokens_per_step == 512
    assert EngineConfig(device="cpu", max_tokens_per_step=64).resolved().max_tokens_per_step == 64
    with pytest.raises(ValueError):
        EngineConfig(max_tokens_per_step=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="asserts what a CUDA machine does")
def test_the_step_budget_is_larger_on_cuda():
    assert EngineConfig(device="cuda").resolved().max_tokens_per_step == 2048


def test_the_kv_cache_is_float16_on_a_cpu_with_our_kernels_else_the_models_dtype():
    assert EngineConfig(device="cpu").resolved().kv_cache_dtype == "float16"
    assert EngineConfig(device="cpu", cpu_kernels=False).resolved().kv_cache_dtype == "float32"
    assert EngineConfig(device="cpu", dtype="bfloat16").resolved().kv_cache_dtype == "bfloat16"
    assert EngineConfig(device="cpu", kv_cache_dtype="float32").resolved().kv_cache_dtype == "float32"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="asserts what a CUDA machine does")
def test_a_float16_cache_beside_a_bfloat16_model_is_refused_on_cuda():
    assert EngineConfig(device="cuda").resolved().kv_cache_dtype == "bfloat16"
    with pytest.raises(EngineError, match="KV cache is for the CPU"):
        EngineConfig(device="cuda", kv_cache_dtype="float16").resolved()


@no_gpu
def test_cuda_without_a_gpu_is_refused_before_any_model_loads():
    config = EngineConfig(device="cuda", model="no-such-model")  # an unknown model: proof nothing resolved
    with pytest.raises(EngineError, match="VIREO_DEVICE=cuda.*no CUDA"):
        create_engine(config)


def test_the_context_is_max_model_len_within_the_models_own():
    assert EngineConfig(max_model_len=512).context_length(8192) == 512
    assert EngineConfig(max_model_len=16384).context_length(8192) == 8192
    assert EngineConfig(max_model_len=None).context_length(4096) == 4096


def test_draft_speculation_without_a_draft_model_is_refused():
    with pytest.raises(ValueError, match="draft model"):
        EngineConfig(speculation="draft")


@pytest.mark.parametrize("bits", ["int8", "int4"])
async def test_a_plain_model_quantized_at_load_is_served_on_cpu(bits):
    engine = create_engine(
        EngineConfig(
            model="smollm2-135m",
            device="cpu",
            quantization=bits,
            kv_cache_tokens=2048,
            max_model_len=512,
            speculation="off",
        )
    )
    qkv = engine.model.layers[0].qkv
    assert type(qkv).__name__ == "QuantizedLinear" and f"bits={bits[-1]}" in qkv.extra_repr()
    await engine.start()
    try:
        out = await engine.complete(
            GenerationRequest(prompt="The capital of France is", sampling=SamplingParams(max_tokens=8, temperature=0))
        )
    finally:
        await engine.shutdown()
    assert out.usage.completion_tokens == 8 and out.text.strip()


def test_the_kv_cache_fraction_applies_on_cuda_only():
    from vireo.inference.native.kv_budget import kv_bytes_per_token, kv_cache_slots

    class Shape:
        layers, kv_heads, head_dim = 2, 2, 8

    config = EngineConfig(kv_cache_tokens=4096, kv_cache_memory_fraction=0.5)
    assert kv_cache_slots(config, Shape(), torch.float32, torch.device("cpu")) == 4096
    assert kv_bytes_per_token(Shape(), torch.bfloat16) == 2 * 2 * 2 * 8 * 2  # K and V, every layer
