"""Overlapped decoding (`overlap.py`): the next decode step is launched before this one's tokens
land. On CPU nothing runs asynchronously, but the run-ahead path is the same code; forcing it on
checks that it gives exactly the tokens, stops and bookkeeping of the plain path."""

import asyncio

import pytest

from vireo.inference.api import Finished, GenerationRequest, SamplingParams, TokenDelta

from .conftest import PROMPTS
from .test_engine import wait_idle


def request(prompt, max_tokens=24, **sampling):
    return GenerationRequest(
        prompt=prompt, sampling=SamplingParams(max_tokens=max_tokens, **sampling), speculation="off"
    )


@pytest.fixture
def pair(engine_factory):
    """The same engine settings with overlapped decoding forced on and off."""

    def build(**settings):
        return (
            engine_factory(overlap_decode=True, speculation="off", **settings),
            engine_factory(overlap_decode=False, speculation="off", **settings),
        )

    return build


async def streamed(engine, req):
    """The token ids `req` streams, in order, and its Finished event."""
    token_ids, final = [], None
    async for event in engine.generate(req):
        if isinstance(event, TokenDelta):
            token_ids.extend(event.token_ids)
        elif isinstance(event, Finished):
            final = event
    return token_ids, final


async def staggered(engine, prompts, lengths):
    """Requests that arrive while others decode, with different lengths (some end on EOS)."""

    async def one(i, prompt):
        await asyncio.sleep(0.15 * i)
        return await streamed(engine, request(prompt, lengths[i % len(lengths)]))

    return await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))


async def test_run_ahead_gives_the_plain_paths_tokens_and_stops(pair):
    ahead, plain = pair()
    prompts, lengths = PROMPTS[:6], [7, 40, 16, 64, 3, 25]
    got_runs = await staggered(ahead, prompts, lengths)
    want_runs = await staggered(plain, prompts, lengths)
    assert ahead.overlap.steps_run_ahead > 20 and plain.overlap.steps_run_ahead == 0
    assert [ids for ids, _ in got_runs] == [ids for ids, _ in want_runs]  # token by token
    got, want = [f for _, f in got_runs], [f for _, f in want_runs]
    assert [f.text for f in got] == [f.text for f in want]
    assert [f.finish_reason for f in got] == [f.finish_reason for f in want]
    assert [f.usage.completion_tokens for f in got] == [f.usage.completion_tokens for f in want]
    assert {f.finish_reason for f in want} >= {"length"}
    for engine in (ahead, plain):
        stats = await wait_idle(engine)
        assert stats.kv_blocks_used == 0  # cached blocks are evictable, so free: none may leak either way
        assert stats.running == 0 and stats.generated_tokens == sum(f.usage.completion_tokens for f in got)


async def test_a_sequence_that_ends_on_eos_drops_the_token_computed_past_it(pair):
    ahead, plain = pair(prefix_caching=False)
    chat = [{"role": "user", "content": "What is the capital of France? One word."}]

    def ask():
        return GenerationRequest(messages=chat, sampling=SamplingParams(max_tokens=200), speculation="off")

    want = await plain.complete(ask())
    assert want.finish_reason == "stop"  # the model ends this answer itself
    got = await ahead.complete(ask())
    assert (got.text, got.finish_reason, got.usage.completion_tokens) == (
        want.text,
        want.finish_reason,
        want.usage.completion_tokens,
    )
    stats = await wait_idle(ahead)
    assert stats.kv_blocks_used == 0 and ahead.overlap.steps_run_ahead > 0


async def test_stop_strings_and_streamed_deltas_match(pair):
    ahead, plain = pair()
    full = await plain.complete(request(PROMPTS[6], 30))
    stop = full.text[10:14]
    cut = await ahead.complete(request(PROMPTS[6], 30, stop=[stop]))
    assert cut.finish_reason == "stop" and cut.text == full.text[: full.text.index(stop)]
    deltas, final = [], None
    async for event in ahead.generate(request(PROMPTS[2], 16)):
        if isinstance(event, TokenDelta):
            deltas.append(event)
        elif isinstance(event, Finished):
            final = event
    assert "".join(d.text for d in deltas) == final.text
    assert sum(len(d.token_ids) for d in deltas) == final.usage.completion_tokens == 16


async def test_abort_while_a_step_is_in_flight_frees_everything(pair):
    ahead, _ = pair(prefix_caching=False)
    req = request(PROMPTS[1], 400)
    seen, final = 0, None
    async for event in ahead.generate(req):
        if isinstance(event, TokenDelta):
            seen += 1
            if seen == 5:
                await ahead.abort(req.request_id)
        if isinstance(event, Finished):
            final = event
    assert final is not None and final.finish_reason == "abort" and final.usage.completion_tokens < 400
    stats = await wait_idle(ahead)
    for _ in range(100):  # the step thread lands the dropped flight right after the abort
        if ahead.overlap.flight is None:
            break
        await asyncio.sleep(0.02)
    assert stats.kv_blocks_used == 0 and stats.running == 0 and ahead.overlap.flight is None


async def test_preemption_still_keeps_greedy_output(pair):
    ahead, plain = pair(kv_cache_tokens=160, max_batch=8, prefix_caching=False)
    prompts = PROMPTS[:4]
    got = await asyncio.gather(*(ahead.complete(request(p, 40)) for p in prompts))
    want = await asyncio.gather(*(plain.complete(request(p, 40)) for p in prompts))
    assert ahead.scheduler.num_preemptions > 0
    assert [f.text for f in got] == [f.text for f in want]


async def test_run_ahead_steps_name_their_full_blocks_in_the_prefix_cache(pair):
    ahead, plain = pair()
    cached, hits = [], []
    for engine in (ahead, plain):
        first = await engine.complete(request(PROMPTS[7], 48))
        await wait_idle(engine)
        cached.append(engine.blocks.cache.num_evictable)
        follow = await engine.complete(request(PROMPTS[7] + first.text + " Also,", 4))
        hits.append(follow.usage.cached_tokens)
    assert cached[0] == cached[1] == (6 + 48 - 1) // 16  # every full computed block, decoded ones too
    assert hits[0] == hits[1] > 0


async def test_sampled_and_greedy_rows_share_run_ahead_steps(pair):
    ahead, _ = pair()
    mixed = await asyncio.gather(
        ahead.complete(request(PROMPTS[0], 20, temperature=0.8, top_p=0.9)),
        ahead.complete(request(PROMPTS[1], 20)),
        ahead.complete(request(PROMPTS[2], 20, temperature=1.2, top_k=20, ignore_eos=True)),
    )
    assert ahead.overlap.steps_run_ahead > 0
    assert mixed[2].usage.completion_tokens == 20
    assert all(f.finish_reason in ("length", "stop") for f in mixed)


async def test_requests_that_need_the_host_between_steps_do_not_run_ahead(pair):
    ahead, plain = pair()
    seeded = await ahead.complete(request(PROMPTS[2], 12, temperature=0.9, seed=5))
    again = await plain.complete(request(PROMPTS[2], 12, temperature=0.9, seed=5))
    logprobs = await ahead.complete(request(PROMPTS[0], 12, logprobs=True))
    assert ahead.overlap.steps_run_ahead == 0
    assert seeded.text == again.text and logprobs.usage.completion_tokens == 12


async def test_an_admission_window_keeps_every_requests_tokens(pair):
    """Arrivals held back while others decode (then admitted together) get the tokens they get at once."""
    windowed, _ = pair(admission_window_ms=200)
    _, plain = pair()
    prompts, lengths = PROMPTS[:6], [7, 40, 16, 64, 3, 25]
    got_runs = await staggered(windowed, prompts, lengths)
    want_runs = await staggered(plain, prompts, lengths)
    for (got, got_final), (want, want_final) in zip(got_runs, want_runs):
        assert got == want
        assert got_final.finish_reason == want_final.finish_reason
    await wait_idle(windowed)
    assert windowed.blocks.num_used == 0 and not windowed.scheduler.waiting
