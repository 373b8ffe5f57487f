"""Decode CUDA graphs: which padded batch sizes are captured, and (on a GPU) that replaying them
gives the same greedy tokens as the eager kernel path."""

import asyncio

import pytest
import torch

from vireo.inference.native.worker.cuda_graphs import graph_batch_sizes, padded_batch_size


def test_sizes_are_powers_of_two_up_to_the_max_batch():
    assert graph_batch_sizes(32) == [1, 2, 4, 8, 16, 32]


def test_a_max_batch_between_powers_of_two_is_its_own_size():
    assert graph_batch_sizes(48) == [1, 2, 4, 8, 16, 32, 48]


def test_a_batch_is_padded_up_to_the_next_captured_size():
    sizes = graph_batch_sizes(32)
    assert [padded_batch_size(n, sizes) for n in (1, 2, 3, 5, 9, 17, 32)] == [1, 2, 4, 8, 16, 32, 32]


def test_a_batch_above_the_largest_size_runs_eagerly():
    assert padded_batch_size(33, graph_batch_sizes(32)) is None


def tiny_cuda_model(tmp_path, dtype: torch.dtype = torch.float32, quantize_bits: int | None = None):
    """A tiny random Llama: its folder, and its model on the GPU (its linears RTN int8/int4 if asked)."""
    from vireo.tools.bench.engines_gpu import TINY
    from vireo.tools.bench.random_weights import llama_config, native_model, random_hf_model, write_model_folder

    folder = write_model_folder(llama_config(TINY), tmp_path)
    hf = random_hf_model(llama_config(TINY, max_positions=512), dtype, "cuda")
    return folder, native_model(hf, dtype, quantize_bits=quantize_bits)


def tiny_prompts(count: int, length: int, seed: int = 0) -> list[list[int]]:
    """`count` prompts of `length` token ids of its vocabulary."""
    from vireo.tools.bench.engines_gpu import TINY
    from vireo.tools.bench.random_weights import random_prompts

    return random_prompts(count, length, TINY["vocab_size"], seed=seed)


@pytest.mark.gpu
def test_graph_replay_matches_eager_greedy_tokens(tmp_path):
    from vireo.tools.bench.engines_gpu import make_engine, native_greedy

    folder, model = tiny_cuda_model(tmp_path)
    prompts = tiny_prompts(5, 24)  # 5 rows: padded to the graph of 8

    async def greedy(graphs: bool):
        engine = make_engine(folder, model, "cuda", max_batch=8, context=128, graphs=graphs)
        try:
            assert (engine.runner.graphs is not None) == graphs
            return await native_greedy(engine, prompts, 16)
        finally:
            await engine.shutdown()

    assert asyncio.run(greedy(True)) == asyncio.run(greedy(False))


@pytest.mark.gpu
@pytest.mark.parametrize(
    "dtype, bits", [(torch.float32, None), (torch.bfloat16, 8), (torch.bfloat16, 4)], ids=["fp32", "int8", "int4"]
)
def test_piecewise_graph_replay_matches_eager_greedy_tokens(tmp_path, dtype, bits):
    """Prefill and mixed steps replayed as graphs of their pieces (`piecewise_graphs`): the same greedy tokens
    as those steps run eagerly, for prompts arriving together and one arriving while the others decode; with
    float weights and with int8 / int4 weights (whose many-row path de-quantizes inside the graphs' pool)."""
    from vireo.tools.bench.engines_gpu import make_engine, native_greedy

    folder, model = tiny_cuda_model(tmp_path, dtype, bits)
    prompts, late = tiny_prompts(5, 24), tiny_prompts(1, 37, seed=7)  # 120 rows: padded to the pieces of 128

    async def greedy(piecewise: bool):
        engine = make_engine(folder, model, "cuda", max_batch=8, context=128, piecewise=piecewise)
        try:
            assert (engine.runner.step_graphs is not None) == piecewise
            together = asyncio.create_task(native_greedy(engine, prompts, 16))
            await asyncio.sleep(0.05)  # (joins a decode step: a mixed step)
            return await native_greedy(engine, late, 8), await together
        finally:
            await engine.shutdown()

    assert asyncio.run(greedy(True)) == asyncio.run(greedy(False))


@pytest.mark.gpu
def test_piecewise_graphs_keep_prompt_lookup_verify_steps_greedy(tmp_path):
    """Speculative verify steps (several positions of each row checked at once) replayed as the pieces' graphs:
    the same greedy tokens as eagerly, with guesses made (a random model accepts few of them: the verify steps
    and their rejections are what this checks)."""
    from vireo.inference.api import GenerationRequest, SamplingParams
    from vireo.tools.bench.engines_gpu import make_engine, tokens_of
    from vireo.tools.bench.random_weights import prompt_text

    folder, model = tiny_cuda_model(tmp_path)
    prompts = [p * 3 + p[:6] for p in tiny_prompts(4, 12, seed=3)]  # a phrase repeated: n-grams to look up
    sampling = SamplingParams(max_tokens=64, ignore_eos=True)

    async def greedy(piecewise: bool):
        engine = make_engine(folder, model, "cuda", 8, 128, piecewise=piecewise, speculation="auto")
        try:
            requests = [
                GenerationRequest(prompt=prompt_text(p), sampling=sampling, speculation="prompt_lookup")
                for p in prompts
            ]
            done = await asyncio.gather(*(engine.complete(r) for r in requests))
            stats = engine.stats()
            return [tokens_of(d.text) for d in done], stats.spec_proposed
        finally:
            await engine.shutdown()

    (tokens, proposed), (eager_tokens, _) = asyncio.run(greedy(True)), asyncio.run(greedy(False))
    assert proposed > 0
    assert tokens == eager_tokens


def test_engine_report_ratios_pair_each_native_variant_with_its_baselines():
    from vireo.tools.bench.engines_gpu import ratios

    engines = {
        "native": {1: {"output_tokens_per_s": 200.0}, 8: {"output_tokens_per_s": 1500.0}},
        "native_serial": {1: {"output_tokens_per_s": 160.0}},
        "hf_static": {1: {"output_tokens_per_s": 125.0}},
        "native_int4": {"failed": "RuntimeError: no kernel"},
    }
    got = ratios(engines)
    assert got["native/native_serial bs1"] == 1.25
    assert got["native/hf_static bs1"] == 1.6 and got["native_serial/hf_static bs1"] == 1.28
    assert not any(key.startswith("native_int4") for key in got)  # a failed variant has no ratio
