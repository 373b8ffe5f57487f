"""`Engine.sequence_logprobs`: every token of a sequence with its log-probability and the likeliest
alternatives, from one teacher-forced pass. The native and hf engines give them; the others refuse
with an EngineError that says which backends do. `engine` is parametrized over the backends
(conftest.py)."""

from __future__ import annotations

import pytest

from vireo.inference.api import EngineError, GenerationRequest, PromptTooLongError, SamplingParams

PROMPT, CONTINUATIONS = "The capital of France is", [" Paris", " a city in Europe"]
RUNS_THE_MODEL = ("native", "hf")


def refuses(engine) -> bool:
    return engine.backend not in RUNS_THE_MODEL


async def test_a_backend_that_cannot_refuses_clearly(engine):
    if not refuses(engine):
        pytest.skip(f"the {engine.backend} backend gives sequence log-probabilities")
    with pytest.raises(EngineError, match="native or hf"):
        await engine.sequence_logprobs([1, 2, 3], top=1)


async def test_the_continuations_log_probabilities_sum_to_score(engine):
    if refuses(engine):
        pytest.skip("refused: see test_a_backend_that_cannot_refuses_clearly")
    prompt_ids = engine.encode(PROMPT)
    scores = await engine.score(PROMPT, CONTINUATIONS)
    for continuation, score in zip(CONTINUATIONS, scores):
        scored = await engine.sequence_logprobs(prompt_ids + engine.encode(continuation))
        assert sum(t.logprob for t in scored[len(prompt_ids) :]) == pytest.approx(score, abs=1e-4)


async def test_each_token_with_its_likeliest_alternatives(engine):
    if refuses(engine):
        pytest.skip("refused: see test_a_backend_that_cannot_refuses_clearly")
    ids = engine.encode(PROMPT + " Paris")
    scored = await engine.sequence_logprobs(ids, top=3)

    assert [t.token_id for t in scored] == ids
    assert "".join(t.text for t in scored) == PROMPT + " Paris"
    assert scored[0].logprob is None and scored[0].top == []  # nothing precedes the first token
    for token in scored[1:]:
        values = [a.logprob for a in token.top]
        assert len(values) == 3 and values == sorted(values, reverse=True) and token.logprob <= values[0] <= 0
    paris = scored[-1]
    assert paris.top[0].token_id == paris.token_id and paris.top[0].logprob == paris.logprob  # the same number


async def test_greedy_tokens_are_the_likeliest_at_their_positions(engine):
    """Generation and teacher forcing agree: each token written greedily is the top-1 of the pass."""
    if refuses(engine):
        pytest.skip("refused: see test_a_backend_that_cannot_refuses_clearly")
    prompt = "Count: 1, 2, 3, 4, 5,"
    written = []
    async for event in engine.generate(
        GenerationRequest(prompt=prompt, sampling=SamplingParams(max_tokens=8, ignore_eos=True))
    ):
        written += getattr(event, "token_ids", [])
    prompt_ids = engine.encode(prompt)
    scored = await engine.sequence_logprobs(prompt_ids + written, top=1, start=len(prompt_ids))

    assert [t.token_id for t in scored] == written  # `start`: only the written tokens come back
    assert all(t.top[0].token_id == t.token_id for t in scored)


async def test_token_ids_outside_the_vocabulary_or_the_context_are_refused(engine):
    if refuses(engine):
        pytest.skip("refused: see test_a_backend_that_cannot_refuses_clearly")
    with pytest.raises(EngineError, match="not in the vocabulary"):
        await engine.sequence_logprobs([1, 10**9, 2])
    with pytest.raises(PromptTooLongError):
        await engine.sequence_logprobs([1] * (engine.context_length + 1))


async def test_a_token_id_prompt_generates_like_its_text(engine):
    if engine.backend == "openai":
        pytest.skip("the openai backend passes token ids to its server, which tokenizes for itself")
    from_text = await engine.complete(GenerationRequest(prompt=PROMPT, sampling=SamplingParams(max_tokens=6)))
    from_ids = await engine.complete(
        GenerationRequest(prompt_token_ids=engine.encode(PROMPT), sampling=SamplingParams(max_tokens=6))
    )
    assert from_ids.text == from_text.text and from_ids.usage.prompt_tokens == from_text.usage.prompt_tokens
    with pytest.raises(EngineError, match="not in the vocabulary"):  # before any work
        await engine.complete(GenerationRequest(prompt_token_ids=[1, -5], sampling=SamplingParams(max_tokens=2)))
