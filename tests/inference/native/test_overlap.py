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
    """The same engine settings with overlapped decoding forced on (arrivals admitted into the run-ahead) and off."""

    def build(**settings):
        ahead = engine_factory(overlap_decode=True, speculation="off", **settings)
        ahead.overlap.admit_ahead = True  # (set before any request: the step thread is idle)
        return ahead, engine_factory(overlap_decode=False, speculation="off", **settings)

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
    # the step tally names the run-ahead steps as such, and only the engine that ran them
    assert ahead.stats().steps_by_kind["decode_overlapped"] > 20
    assert plain.stats().steps_by_kind["decode_overlapped"] == 0


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


async def mid_flight(engine, lead, later, after=4):
    """`lead` streams `after` tokens (decoding ahead by then, where overlap is on), then `later`
    arrive one right after another: each run's token ids and Finished event, `lead`'s first."""
    decoding = asyncio.Event()

    async def first():
        token_ids, final = [], None
        async for event in engine.generate(lead):
            if isinstance(event, TokenDelta):
                token_ids.extend(event.token_ids)
                if len(token_ids) >= after:
                    decoding.set()
            elif isinstance(event, Finished):
                final = event
        return token_ids, final

    async def then():
        await decoding.wait()
        return await asyncio.gather(*(streamed(engine, req) for req in later))

    lead_run, later_runs = await asyncio.gather(first(), then())
    return [lead_run, *later_runs]


def same_runs(got_runs, want_runs) -> bool:
    """The same token ids, text, finish reason and token count, request by request."""

    def summary(runs):
        return [(ids, f.text, f.finish_reason, f.usage.completion_tokens) for ids, f in runs]

    return summary(got_runs) == summary(want_runs)


async def joins_ahead_like_the_plain_path(ahead, plain, requests) -> None:
    """`requests()` (a lead and those arriving mid-flight) on both engines: the overlapped one admits ahead,
    both give the same runs, and the overlapped one ends holding nothing."""
    got_runs = await mid_flight(ahead, *requests())
    want_runs = await mid_flight(plain, *requests())
    assert ahead.overlap.steps_admitted_ahead > 0
    assert same_runs(got_runs, want_runs)
    stats = await wait_idle(ahead)
    assert stats.kv_blocks_used == 0 and stats.running == 0


async def during_a_flight(engine, prompts, lengths):
    """As `staggered`, each arrival also waiting (up to 5 s) until the engine has a decode step in flight: on a
    loaded machine a fixed stagger can put every arrival into a prefill step, where none joins a run-ahead."""

    async def one(i, prompt):
        await asyncio.sleep(0.15 * i)
        for _ in range(1000):
            if i == 0 or engine.overlap.flight is not None:
                break
            await asyncio.sleep(0.005)
        return await streamed(engine, request(prompt, lengths[i % len(lengths)]))

    return await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))


async def test_requests_arriving_mid_flight_join_the_run_ahead_with_the_plain_paths_tokens(pair):
    ahead, plain = pair()
    prompts, lengths = PROMPTS[4:10], [30, 12, 45, 5, 20, 33]
    got_runs = await during_a_flight(ahead, prompts, lengths)
    want_runs = await during_a_flight(plain, prompts, lengths)
    assert ahead.overlap.steps_admitted_ahead > 0 and plain.overlap.steps_admitted_ahead == 0
    assert same_runs(got_runs, want_runs)
    stats = await wait_idle(ahead)
    assert stats.kv_blocks_used == 0 and stats.running == 0


async def test_by_default_an_arrival_drains_the_run_ahead_and_runs_the_plain_paths_tokens(engine_factory):
    default = engine_factory(overlap_decode=True, speculation="off")
    plain = engine_factory(overlap_decode=False, speculation="off")
    prompts, lengths = PROMPTS[4:8], [30, 12, 45, 5]
    got_runs = await staggered(default, prompts, lengths)
    assert default.overlap.steps_run_ahead > 0 and default.overlap.steps_admitted_ahead == 0
    assert same_runs(got_runs, await staggered(plain, prompts, lengths))


async def test_a_request_that_needs_the_host_arriving_mid_flight_waits_for_the_usual_step(pair):
    ahead, plain = pair()

    def requests():
        lead = request(PROMPTS[1], 60, ignore_eos=True)
        joins = request(PROMPTS[3], 12)  # first in line: joins the run-ahead, and admission stops after it
        return lead, [joins, request(PROMPTS[0], 12, logprobs=True), request(PROMPTS[2], 12, temperature=0.9, seed=5)]

    await joins_ahead_like_the_plain_path(ahead, plain, requests)


async def test_a_prompt_over_the_step_budget_is_prefilled_in_chunks_once_the_flight_lands(pair):
    ahead, plain = pair()
    for engine in (ahead, plain):
        engine.scheduler.max_tokens_per_step = 32  # (set before any request: the step thread is idle)
    long_prompt = " ".join(PROMPTS)
    assert len(ahead.tokenizer.encode(long_prompt)) > 32

    def requests():
        later = [request(PROMPTS[3], 10), request(long_prompt, 10), request(PROMPTS[5], 10)]
        return request(PROMPTS[1], 60, ignore_eos=True), later

    await joins_ahead_like_the_plain_path(ahead, plain, requests)


async def test_abort_of_a_request_admitted_into_the_run_ahead_frees_everything(pair):
    ahead, plain = pair(prefix_caching=False)
    lead, joined = request(PROMPTS[1], 40, ignore_eos=True), request(PROMPTS[0], 200)

    async def abort_once_admitted():
        """Abort `joined` as soon as the scheduler runs it: its prompt is then in the step queued ahead."""
        while not any(seq.request_id == joined.request_id for seq in list(ahead.scheduler.running)):
            await asyncio.sleep(0.001)
        await ahead.abort(joined.request_id)

    aborter = asyncio.create_task(abort_once_admitted())
    (lead_ids, lead_final), (_, final) = await mid_flight(ahead, lead, [joined])
    await aborter
    want_ids, _ = await streamed(plain, request(PROMPTS[1], 40, ignore_eos=True))
    assert final.finish_reason == "abort" and final.usage.completion_tokens <= 1  # its first token, at most
    assert lead_ids == want_ids and lead_final.finish_reason == "length"
    assert ahead.overlap.steps_admitted_ahead > 0
    stats = await wait_idle(ahead)
    for _ in range(100):  # the step thread lands the last flight right after the lead's final event
        if ahead.overlap.flight is None:
            break
        await asyncio.sleep(0.02)
    assert stats.kv_blocks_used == 0 and stats.running == 0 and ahead.overlap.flight is None
