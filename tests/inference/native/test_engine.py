"""Behaviour of the native engine through the Engine API, on the real SmolLM2."""

import asyncio

import pytest
import torch

from vireo.inference.api import Finished, GenerationRequest, PromptTooLongError, SamplingParams, TokenDelta

from .conftest import PROMPTS


def greedy(prompt, max_tokens=24, **kw):
    return GenerationRequest(prompt=prompt, sampling=SamplingParams(max_tokens=max_tokens), **kw)


async def wait_idle(engine, rounds=200):
    for _ in range(rounds):
        stats = engine.stats()
        if stats.running == 0 and stats.waiting == 0 and stats.kv_blocks_used == 0:
            return stats
        await asyncio.sleep(0.05)
    return engine.stats()


async def test_streams_deltas_that_add_up_to_the_final_text(native):
    deltas, final = [], None
    async for event in native.generate(greedy(PROMPTS[2], 16, speculation="off")):
        if isinstance(event, TokenDelta):
            deltas.append(event)
        else:
            final = event
    assert len(deltas) > 1
    assert "".join(d.text for d in deltas) == final.text
    assert sum(len(d.token_ids) for d in deltas) == final.usage.completion_tokens == 16
    assert final.finish_reason == "length"


async def test_the_finished_event_says_when_the_request_arrived_ran_and_made_its_first_token(native):
    import time

    sent = time.time()
    first_seen, final = None, None
    async for event in native.generate(greedy(PROMPTS[2], 8, speculation="off")):
        if isinstance(event, TokenDelta) and first_seen is None:
            first_seen = time.time()
        final = event
    times = final.times
    assert sent <= times.received_at <= times.scheduled_at <= times.first_token_at <= first_seen


async def test_logprobs_come_with_each_token(native):
    request = GenerationRequest(prompt=PROMPTS[0], sampling=SamplingParams(max_tokens=6, logprobs=True))
    deltas = [e async for e in native.generate(request) if isinstance(e, TokenDelta) and e.token_ids]
    assert all(len(d.logprobs) == len(d.token_ids) for d in deltas)
    assert all(lp <= 0 for d in deltas for lp in d.logprobs)


async def test_abort_mid_generation_frees_blocks(native):
    request = greedy(PROMPTS[1], 400)
    stream = native.generate(request)
    seen = 0
    async for event in stream:
        if isinstance(event, TokenDelta):
            seen += 1
            if seen == 3:
                await native.abort(request.request_id)
        if isinstance(event, Finished):
            assert event.finish_reason == "abort"
            assert event.usage.completion_tokens < 400
    stats = await wait_idle(native)
    assert stats.kv_blocks_used == 0 and stats.running == 0


async def test_closing_the_stream_aborts_the_request(native):
    stream = native.generate(greedy(PROMPTS[3], 400))
    async for event in stream:
        break
    await stream.aclose()
    stats = await wait_idle(native)
    assert stats.kv_blocks_used == 0 and stats.running == 0


async def test_stop_string_ends_generation_before_it(native):
    full = await native.complete(greedy(PROMPTS[6], 30))
    stop = full.text[10:14]
    request = GenerationRequest(prompt=PROMPTS[6], sampling=SamplingParams(max_tokens=30, stop=[stop]))
    cut = await native.complete(request)
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.index(stop)]


async def test_same_seed_gives_same_sample_even_in_a_batch(native):
    def sampled(seed, prompt=PROMPTS[2]):
        return GenerationRequest(
            prompt=prompt, sampling=SamplingParams(temperature=0.9, top_p=0.95, top_k=50, max_tokens=24, seed=seed)
        )

    alone = await native.complete(sampled(123))
    together = await asyncio.gather(native.complete(sampled(123)), native.complete(sampled(7, PROMPTS[4])))
    other_seed = await native.complete(sampled(999))
    assert alone.text == together[0].text
    assert other_seed.text != alone.text


async def test_too_long_prompt_is_refused_before_any_work(native):
    generated_before = native.stats().generated_tokens
    with pytest.raises(PromptTooLongError):
        async for _ in native.generate(greedy("word " * 9000)):
            pass
    stats = native.stats()
    assert stats.waiting == 0 and stats.running == 0 and stats.generated_tokens == generated_before


async def test_score_ranks_the_obvious_label_first(native, hf):
    prompt = "The capital of France is"
    labels = [" a banana", " Paris", " purple"]
    ours = await native.score(prompt, labels)
    assert max(range(3), key=ours.__getitem__) == 1
    reference = await hf.score(prompt, labels)
    assert ours == pytest.approx(reference, abs=1e-2)


async def test_concurrent_batch_equals_sequential(native):
    prompts = PROMPTS[:8]
    one_by_one = [(await native.complete(greedy(p, 20, speculation="off"))).text for p in prompts]
    together = await asyncio.gather(*(native.complete(greedy(p, 20, speculation="off")) for p in prompts))
    assert [f.text for f in together] == one_by_one


async def test_preemption_when_blocks_run_out_keeps_greedy_output(native, engine_factory):
    prompts = PROMPTS[:4]
    expected = [(await native.complete(greedy(p, 40, speculation="off"))).text for p in prompts]
    small = engine_factory(kv_cache_tokens=160, max_batch=8, prefix_caching=False)
    outputs = await asyncio.gather(*(small.complete(greedy(p, 40)) for p in prompts))
    assert small.scheduler.num_preemptions > 0
    assert [f.text for f in outputs] == expected


async def test_steps_are_counted_by_kind_with_their_time(engine_factory):
    engine = engine_factory(speculation="off")

    def exactly(prompt, tokens):
        return GenerationRequest(prompt=prompt, sampling=SamplingParams(max_tokens=tokens, ignore_eos=True))

    await engine.complete(exactly(PROMPTS[0], 4))  # alone: its prompt in one step, then three decode steps
    assert engine.stats().steps_by_kind == {"decode_overlapped": 0, "decode": 3, "prefill": 1, "mixed": 0}
    first_token = asyncio.Event()

    async def long_one():
        async for _ in engine.generate(exactly(PROMPTS[1], 24)):
            first_token.set()

    running = asyncio.create_task(long_one())
    await first_token.wait()
    # arrives while the long one decodes: its prompt runs beside that decode (one mixed step), then its three
    # decodes ride along the long one's, whose 23 steps after its prompt are that mixed one and 22 decodes
    await engine.complete(exactly(PROMPTS[2], 4))
    await running
    stats = await wait_idle(engine)
    assert stats.steps_by_kind == {"decode_overlapped": 0, "decode": 3 + 22, "prefill": 2, "mixed": 1}
    assert all(stats.step_seconds_by_kind[kind] > 0 for kind in ("decode", "prefill", "mixed"))
    assert stats.step_seconds_by_kind["decode_overlapped"] == 0
    assert {kind: sum(counts) for kind, counts in stats.step_ms_histogram_by_kind.items()} == stats.steps_by_kind


async def test_a_prompt_longer_than_the_step_budget_is_prefilled_over_several_steps(engine_factory):
    engine = engine_factory(speculation="off", max_tokens_per_step=16, prefix_caching=False)
    prompt = " ".join(["the quick brown fox jumps over the lazy dog"] * 5)
    tokens = engine.count_tokens(prompt)
    assert tokens > 32
    request = GenerationRequest(prompt=prompt, sampling=SamplingParams(max_tokens=2, ignore_eos=True))
    out = await engine.complete(request)
    assert out.usage.prompt_tokens == tokens and out.usage.completion_tokens == 2
    assert engine.stats().steps_by_kind["prefill"] == -(-tokens // 16)  # chunks of the budget, the last shorter
    assert (await engine_factory(speculation="off", prefix_caching=False).complete(request)).text == out.text


async def test_stats_report_engine_state(native):
    await native.complete(greedy(PROMPTS[0], 4))
    stats = native.stats()
    assert stats.backend == "native" and stats.kv_blocks_total == 16384 // 16
    assert stats.generated_tokens > 0 and stats.tokens_per_s > 0


async def test_a_float16_cache_keeps_greedy_output_and_logprobs_of_a_float32_one(engine_factory):
    """The CPU default (`kv_cache_dtype` auto: float16 where our kernels run) against a float32 cache: the
    same greedy tokens for every prompt, each token's logprob within 0.02 (float16 keeps 11 bits of each
    key and value; llama.cpp's default cache is float16 too)."""
    half = engine_factory(kv_cache_tokens=4096, kv_cache_dtype="float16", speculation="off")
    full = engine_factory(kv_cache_tokens=4096, kv_cache_dtype="float32", speculation="off")
    assert half.runner.kv_caches[0][0].dtype == torch.float16 and full.runner.kv_caches[0][0].dtype == torch.float32

    async def tokens_and_logprobs(engine, prompt):
        request = GenerationRequest(prompt=prompt, sampling=SamplingParams(max_tokens=24, logprobs=True))
        deltas = [e async for e in engine.generate(request) if isinstance(e, TokenDelta) and e.token_ids]
        return [t for d in deltas for t in d.token_ids], [lp for d in deltas for lp in d.logprobs]

    for prompt in PROMPTS:
        (ours, our_logprobs), (reference, reference_logprobs) = [
            await tokens_and_logprobs(engine, prompt) for engine in (half, full)
        ]
        assert ours == reference, prompt
        drift = max(abs(a - b) for a, b in zip(our_logprobs, reference_logprobs, strict=True))
        assert drift < 0.02, (prompt, drift)
