"""Tensor parallelism on CPU: the shards' arithmetic equals the whole model's, and an engine over gloo
ranks (real processes) generates what one process does."""

from __future__ import annotations

import asyncio

import pytest
import torch

from vireo.inference.api import GenerationRequest, SamplingParams
from vireo.inference.engine_config import EngineConfig
from vireo.inference.factory import create_engine
from vireo.inference.model_config import read_model_config
from vireo.inference.native.parallel.sharding import Shard, check_shardable, shard_weights
from vireo.inference.native.worker.model_runner import WARM_UP_STEPS
from vireo.inference.random_models import llama_config, random_weights
from vireo.inference.registry import ModelRegistry
from vireo.kernels.qweight import dequantize, quantize_int4, quantize_int8

from .test_overlap import mid_flight, request

LOGIT_TOLERANCE = 1e-4  # float32 logits: the ranks' partial sums are added in another order


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    return home, ModelRegistry(home).resolve("random:tiny").path


def test_the_shards_of_a_layer_compute_what_the_whole_layer_does(tiny):
    _, folder = tiny
    config = read_model_config(folder)
    whole = random_weights(folder, config, torch.float32, "cpu")
    shards = [shard_weights(whole, Shard(config, rank, 2)) for rank in range(2)]
    x = torch.randn(3, config.hidden_size)
    prefix = "model.layers.1."
    for proj in ("self_attn.q_proj", "self_attn.k_proj", "mlp.gate_proj"):  # column-parallel: outputs side by side
        name = f"{prefix}{proj}.weight"
        together = torch.cat([x @ s[name].T for s in shards], dim=1)
        torch.testing.assert_close(together, x @ whole[name].T)
    for proj in ("self_attn.o_proj", "mlp.down_proj"):  # row-parallel: partial outputs summed
        name = f"{prefix}{proj}.weight"
        inputs = torch.randn(3, whole[name].shape[1])
        half = inputs.shape[1] // 2
        summed = sum(inputs[:, r * half : (r + 1) * half] @ s[name].T for r, s in enumerate(shards))
        torch.testing.assert_close(summed, inputs @ whole[name].T)
    head = torch.cat([s["lm_head.weight"] for s in shards])  # tied: each rank's vocabulary rows
    assert torch.equal(head, whole["model.embed_tokens.weight"])
    assert all(torch.equal(s["model.embed_tokens.weight"], whole["model.embed_tokens.weight"]) for s in shards)


def test_a_vocabulary_that_does_not_split_evenly_is_padded_on_the_last_rank():
    config = llama_config({**_tiny_dims(), "vocab_size": 511})
    shard = Shard(config, 1, 2)
    rows = shard.vocab_rows(torch.ones(511, 64))
    assert rows.shape == (256, 64) and rows[:255].eq(1).all() and rows[255:].eq(0).all()


def test_quantized_weights_are_cut_along_whole_groups():
    w = torch.randn(64, 512)
    int8, int4 = quantize_int8(w), quantize_int4(w, group_size=128)
    for q in (int8, int4):
        shards = [Shard(llama_config(_tiny_dims()), r, 2) for r in range(2)]
        rows = [s("model.layers.0.mlp.gate_proj.weight", q) for s in shards]
        cols = [s("model.layers.0.mlp.down_proj.weight", q) for s in shards]
        assert torch.equal(torch.cat([dequantize(r) for r in rows]), dequantize(q))
        assert torch.equal(torch.cat([dequantize(c) for c in cols], dim=1), dequantize(q))
    three_groups = quantize_int4(torch.randn(64, 384), group_size=128)  # 192 input features a rank
    with pytest.raises(ValueError, match="int4 groups of 128 do not split 384 input features"):
        Shard(llama_config(_tiny_dims()), 0, 2)("model.layers.0.mlp.down_proj.weight", three_groups)


def test_a_size_that_does_not_divide_the_heads_is_refused_with_the_counts():
    with pytest.raises(ValueError, match="does not divide the model's 4 attention heads"):
        check_shardable(llama_config(_tiny_dims()), 3)
    with pytest.raises(ValueError, match="for the native engine"):
        EngineConfig(backend="hf", tensor_parallel_size=2)


async def _generate(engine, prompts: list[str], max_tokens: int) -> list[str]:
    sampling = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
    finals = await asyncio.gather(*(engine.complete(GenerationRequest(prompt=p, sampling=sampling)) for p in prompts))
    return [f.text for f in finals]


async def _run(config: EngineConfig, prompts: list[str], max_tokens: int, scored: str):
    engine = create_engine(config)
    await engine.start()
    try:
        tokens = await _generate(engine, prompts, max_tokens)
        ids = torch.tensor([engine.tokenizer.encode(scored)])
        heads = engine.model.shape.heads  # this process's (rank 0's) share
        return tokens, engine.forward_logits(ids), engine.stats(), heads
    finally:
        await engine.shutdown()


@pytest.mark.parametrize(
    "model, size",
    [("random:tiny", 2), ("smollm2-135m", 3)],  # SmolLM2's 9 heads and 3 key/value heads split in three
)
async def test_ranks_in_processes_generate_what_one_process_does(tiny, model, size):
    home = tiny[0] if model.startswith("random:") else None
    prompts = (
        ["t5 t6 t7 t8 t9", "t1 t2 t3"]
        if model.startswith("random:")
        else [
            "The capital of France is",
            "def fibonacci(n):",
            "Once upon a time, in a small village,",
        ]
    )
    base = EngineConfig(backend="native", model=model, home=home, max_model_len=512, kv_cache_tokens=2048, threads=1)
    single, single_logits, _, all_heads = await _run(base, prompts, 24, prompts[0])
    sharded, sharded_logits, stats, heads = await _run(
        base.model_copy(update={"tensor_parallel_size": size}), prompts, 24, prompts[0]
    )
    assert sharded == single and all(text.strip() for text in single)  # greedy, the requests batched together
    assert (sharded_logits - single_logits).abs().max().item() < LOGIT_TOLERANCE
    assert stats.generated_tokens == 24 * len(prompts) and heads * size == all_heads


async def _mid_flight(config: EngineConfig, prompts: list[str]):
    """Each request's token ids, the later ones arriving while the first decodes; and how many steps
    admitted requests into the run-ahead."""
    engine = create_engine(config)
    engine.overlap.admit_ahead = True
    await engine.start()
    try:
        later = [request(p, 16, ignore_eos=True) for p in prompts[1:]]
        runs = await mid_flight(engine, request(prompts[0], 64, ignore_eos=True), later)
        return [ids for ids, _ in runs], engine.overlap.steps_admitted_ahead
    finally:
        await engine.shutdown()


async def test_ranks_run_steps_queued_ahead_with_prompts_admitted_into_them(tiny):
    """Overlapped decoding forced on: the ranks take a queued step's decode ids by broadcast and plan
    the prompts admitted into it, and generate what one process does without overlap."""
    prompts = ["t5 t6 t7 t8 t9", "t1 t2 t3", "t4 t4 t2 t8"]
    base = EngineConfig(
        backend="native", model="random:tiny", home=tiny[0], max_model_len=512, kv_cache_tokens=2048, threads=1
    )
    single, _ = await _mid_flight(base.model_copy(update={"overlap_decode": False}), prompts)
    sharded, admitted = await _mid_flight(
        base.model_copy(update={"overlap_decode": True, "tensor_parallel_size": 2}), prompts
    )
    assert sharded == single and admitted > 0


def test_an_engine_whose_heads_do_not_split_says_so_before_starting_ranks():
    with pytest.raises(ValueError, match="tensor_parallel_size 2 does not divide the model's 9 attention heads"):
        create_engine(EngineConfig(backend="native", model="smollm2-135m", tensor_parallel_size=2))


def _tiny_dims() -> dict:
    from vireo.inference.random_models import SHAPES

    return dict(SHAPES["tiny"])


def test_more_ranks_than_gpus_is_refused_when_the_settings_are_resolved(monkeypatch):
    from vireo.inference.api import EngineError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(EngineError, match="tensor_parallel_size 2 needs as many GPUs; torch sees 1"):
        EngineConfig(device="cuda", tensor_parallel_size=2).resolved()
    assert EngineConfig(device="cuda").resolved().device == "cuda"  # one rank asks for nothing more


async def test_a_planned_step_runs_on_every_rank_as_in_one_process(tiny):
    """`run_plan` (what the kernel warm-up runs at start, on CUDA) sends the plan to the other ranks, which run it
    with rank 0: a fresh prompt's logits equal one process's, and the ranks serve requests afterwards."""
    base = EngineConfig(
        backend="native", model="random:tiny", home=tiny[0], max_model_len=512, kv_cache_tokens=2048, threads=1
    )
    engines = [create_engine(base), create_engine(base.model_copy(update={"tensor_parallel_size": 2}))]
    try:
        logits = []
        for engine in engines:
            await engine.start()
            step = next(step for step in WARM_UP_STEPS if step[0][0] == 0 and step[0][1] > 16)  # a fresh prompt
            with torch.inference_mode():
                logits.append(engine.runner.run_plan(engine.runner.warm_up_plan(step)))
        assert (logits[1] - logits[0]).abs().max().item() < LOGIT_TOLERANCE
        assert await _generate(engines[1], ["t1 t2 t3"], 8) == await _generate(engines[0], ["t1 t2 t3"], 8)
    finally:
        for engine in engines:
            await engine.shutdown()
