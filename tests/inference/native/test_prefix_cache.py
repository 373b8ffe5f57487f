"""Prefix caching through the engine: same outputs, counted hits, copy-on-write on full hits."""

import asyncio

from vireo.inference.api import GenerationRequest, SamplingParams

SYSTEM = (
    "You are Vireo, a careful assistant for a small software company. Answer briefly, "
    "cite the relevant policy section when you can, never invent facts, and say so plainly "
    "when you do not know. Policies: refunds within 30 days; support hours 9 to 17 on "
    "weekdays; security issues go to the security team at once; no personal data in logs."
)
QUESTIONS = [
    "Can I get a refund after two weeks?",
    "When is support open?",
    "Who handles security issues?",
    "May I log user emails?",
]


def chat(question, cache=None, app=None):
    return GenerationRequest(
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
        sampling=SamplingParams(max_tokens=16),
        prefix_cache=cache,
        app=app,
        speculation="off",
    )


async def test_outputs_identical_with_and_without_cache(native):
    uncached = [(await native.complete(chat(q, cache=False))).text for q in QUESTIONS]
    await native.complete(chat("warm the cache", app="warm"))
    cached = await asyncio.gather(*(native.complete(chat(q, app="support")) for q in QUESTIONS))
    assert [f.text for f in cached] == uncached
    assert all(f.usage.cached_tokens >= 64 for f in cached)


async def test_hits_are_counted_overall_and_per_app(native):
    await native.complete(chat(QUESTIONS[0], app="support"))
    await native.complete(chat(QUESTIONS[1], app="support"))
    stats = native.stats()
    assert stats.prefix_hit_rate > 0
    assert stats.prefix_hit_rate_by_app["support"] > 0.5
    assert stats.cached_tokens > 0


async def test_disabled_lookup_reports_no_cached_tokens(native):
    await native.complete(chat(QUESTIONS[2]))
    final = await native.complete(chat(QUESTIONS[2], cache=False))
    assert final.usage.cached_tokens == 0


async def test_fully_cached_prompt_copies_its_last_block_and_matches(native):
    # 64 tokens exactly: every block is full, so the last token reruns in a copied block.
    prompt_ids = native.encode(SYSTEM)[:64]
    prompt = native.tokenizer.decode(prompt_ids)
    assert native.count_tokens(prompt) == 64

    def request():
        return GenerationRequest(prompt=prompt, sampling=SamplingParams(max_tokens=12), speculation="off")

    first = await native.complete(request())
    second, third = await asyncio.gather(native.complete(request()), native.complete(request()))
    assert second.usage.cached_tokens == third.usage.cached_tokens == 63
    assert first.text == second.text == third.text


async def test_a_follow_up_reuses_blocks_filled_while_decoding(native):
    """The next turn repeats the previous prompt and answer: the answer's KV is reused too."""
    first_request = GenerationRequest(
        prompt=SYSTEM, sampling=SamplingParams(max_tokens=48, ignore_eos=True), speculation="off"
    )
    first = await native.complete(first_request)
    prompt_tokens = native.count_tokens(SYSTEM)
    follow_up = GenerationRequest(
        prompt=SYSTEM + first.text + "\nAnd then?", sampling=SamplingParams(max_tokens=4), speculation="off"
    )
    shared = len(native.encode(SYSTEM + first.text))  # (an upper bound on the tokens in common)
    final = await native.complete(follow_up)
    assert final.usage.cached_tokens > prompt_tokens + native.blocks.block_size  # decode-time blocks hit
    assert final.usage.cached_tokens <= shared
