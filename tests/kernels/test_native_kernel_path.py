"""The native model on its kernel path (Triton, interpreted on CPU) gives the reference's logits,
and the engine on that path gives the reference engine's greedy tokens (prefix cache included)."""

import asyncio

import pytest
import torch

from vireo.inference.api import GenerationRequest, SamplingParams
from vireo.inference.local import EngineConfig
from vireo.inference.native.models.attention import AttentionMetadata
from vireo.inference.native.models.kernel_attention import kernel_meta
from vireo.inference.native.worker.model_runner import ModelRunner
from vireo.kernels.dispatch import triton_forced
from vireo.tools.bench.random_weights import (
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
BLOCK = 16


@pytest.fixture(scope="module")
def hf_model():
    return random_hf_model(llama_config(TINY, max_positions=256), torch.float32, "cpu", seed=1)


def slots_of(table: list[int], start: int, end: int) -> torch.Tensor:
    return torch.tensor([table[p // BLOCK] * BLOCK + p % BLOCK for p in range(start, end)])


def kernel_logits(model, runner, ids: list[int], start: int, table: list[int]) -> torch.Tensor:
    """Logits of tokens ids (positions start..) through the kernels, K/V written to `table`."""
    end = start + len(ids)
    meta = AttentionMetadata(
        slots_of(table, start, end), kernel=kernel_meta([len(ids)], [end], [table], BLOCK, runner.device)
    )
    with triton_forced(), torch.inference_mode():
        hidden = model.forward(torch.tensor(ids), torch.arange(start, end), meta, runner.kv_caches)
        return model.logits(hidden)


def reference_logits(runner, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return runner.forward_logits(torch.tensor([ids]))[0]


def test_prefill_then_decode_match_the_reference(hf_model):
    model = native_model(hf_model, torch.float32)
    runner = ModelRunner(model, num_blocks=8, block_size=BLOCK)
    runner.zero_new_blocks(8)
    ids = random_prompts(1, 21, TINY["vocab_size"])[0]
    table = [5, 2]  # not contiguous: the kernels must follow the block table
    reference = reference_logits(runner, ids)
    torch.testing.assert_close(kernel_logits(model, runner, ids[:20], 0, table), reference[:20], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(kernel_logits(model, runner, ids[20:], 20, table), reference[20:], rtol=1e-4, atol=1e-4)


def test_a_chunk_after_cached_blocks_reads_them_in_place(hf_model):
    model = native_model(hf_model, torch.float32)
    runner = ModelRunner(model, num_blocks=8, block_size=BLOCK)
    runner.zero_new_blocks(8)
    ids = random_prompts(1, 24, TINY["vocab_size"], seed=2)[0]
    kernel_logits(model, runner, ids[:16], 0, [3])  # the "cached prefix" block
    torch.testing.assert_close(
        kernel_logits(model, runner, ids[16:], 16, [3, 6]), reference_logits(runner, ids)[16:], rtol=1e-4, atol=1e-4
    )


def test_int4_linears_on_the_kernel_path_match_their_dequantized_reference(hf_model):
    model = native_model(hf_model, torch.float32, quantize_bits=4, group_size=32)
    for layer in model.layers:  # the reference: weights de-quantized to float32, not the CPU int4 kernel (bf16)
        for linear in (layer.qkv, layer.o, layer.gate_up, layer.down):
            linear.cpu_weight = None
    runner = ModelRunner(model, num_blocks=4, block_size=BLOCK)
    runner.zero_new_blocks(4)
    ids = random_prompts(1, 12, TINY["vocab_size"], seed=4)[0]
    torch.testing.assert_close(
        kernel_logits(model, runner, ids, 0, [1]), reference_logits(runner, ids), rtol=1e-3, atol=1e-3
    )


async def test_engine_on_the_kernel_path_matches_the_reference_engine(hf_model, tmp_path):
    from vireo.inference.native.engine import NativeEngine

    config = llama_config(TINY, max_positions=256)
    folder = write_model_folder(config, tmp_path)
    model = native_model(hf_model, torch.float32)
    shared = random_prompts(1, 20, TINY["vocab_size"], seed=5)[0]
    prompts = [prompt_text(shared + tail) for tail in random_prompts(3, 6, TINY["vocab_size"], seed=6)]

    async def greedy_texts(kernels: bool) -> list[str]:
        engine = NativeEngine(
            EngineConfig(kv_cache_tokens=1024, max_model_len=256, max_batch=4, speculation="off"),
            folder,
            "tiny",
            model=model,
        )
        with triton_forced(kernels):
            first = await engine.complete(request(prompts[0]))  # later prompts hit its prefix
            rest = await asyncio.gather(*(engine.complete(request(p)) for p in prompts[1:]))
        cached = engine.stats().cached_tokens
        await engine.shutdown()
        assert cached >= 16
        return [first.text] + [r.text for r in rest]

    def request(prompt: str) -> GenerationRequest:
        return GenerationRequest(prompt=prompt, sampling=SamplingParams(max_tokens=6, ignore_eos=True))

    assert await greedy_texts(True) == await greedy_texts(False)


def test_the_forward_in_pieces_between_attention_calls_matches_the_whole_forward(hf_model):
    """`PiecewiseGraphs` (its pieces run as plain calls here; a GPU captures them): a prompt, then a step of a
    decode beside a second prompt, each padded to a captured size, give the model's own hidden states and leave
    the same keys and values in the cache (padding rows store nowhere)."""
    from vireo.inference.native.worker.piecewise_graphs import PiecewiseGraphs

    model = native_model(hf_model, torch.float32)
    whole, pieces = (ModelRunner(model, num_blocks=8, block_size=BLOCK) for _ in range(2))
    for runner in (whole, pieces):
        runner.zero_new_blocks(8)
    graphs = PiecewiseGraphs(model, pieces.kv_caches, max_tokens=64, capture=False)
    assert graphs.sizes == [16, 32, 48, 64]
    a, b = random_prompts(2, 21, TINY["vocab_size"], seed=3)
    steps = [  # (ids, positions, rows per sequence, ends, block tables)
        (a[:20], list(range(20)), [20], [20], [[5, 2]]),
        ([a[20]] + b[:12], [20] + list(range(12)), [1, 12], [21, 12], [[5, 2], [3]]),
    ]
    with triton_forced(), torch.inference_mode():
        for ids, positions, rows, ends, tables in steps:
            slots = torch.cat([slots_of(t, e - r, e) for t, r, e in zip(tables, rows, ends)])
            meta = AttentionMetadata(slots, kernel=kernel_meta(rows, ends, tables, BLOCK, whole.device))
            assert graphs.accepts(len(ids), meta) and graphs.size_for(len(ids)) in (16, 32)
            expected = model.forward(torch.tensor(ids), torch.tensor(positions), meta, whole.kv_caches)
            got = graphs.run(torch.tensor(ids), torch.tensor(positions), meta)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    for (k_whole, v_whole), (k_pieces, v_pieces) in zip(whole.kv_caches, pieces.kv_caches):
        torch.testing.assert_close(k_pieces, k_whole, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(v_pieces, v_whole, rtol=1e-5, atol=1e-5)
