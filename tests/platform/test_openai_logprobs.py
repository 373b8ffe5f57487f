"""`/v1/completions` with `echo` and `logprobs`, as scoring clients use it, with the real `openai` client
against the test stack (API + worker + SmolLM2 on the native engine). The reference is the same
model's native engine in this process: the platform's numbers must be the engine's own."""

from __future__ import annotations

import openai
import pytest
import pytest_asyncio

from tests.conftest import API_KEY
from vireo.inference.factory import create_engine
from vireo.inference.local import EngineConfig

MODEL = "smollm2-135m"
CONTEXT, LABELS = "Review: A wonderful, moving film. I loved every minute!\nSentiment:", [" positive", " negative"]
# Tolerance: the worker and this process run the same float32 weights on the same CPU; they differ only
# in how the work is batched, far below 1e-3 in log-probability.
TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def client(api_server, celery_worker):
    return openai.OpenAI(base_url=f"{api_server}/v1", api_key=API_KEY, max_retries=0, timeout=120)


@pytest_asyncio.fixture(scope="module")
async def reference():
    """The same model on the native engine, in this process."""
    engine = create_engine(EngineConfig(backend="native", model=MODEL))
    await engine.start()
    yield engine
    await engine.shutdown()


async def test_echoed_token_logprobs_sum_to_the_engines_score(client, reference):
    prompt_ids = reference.encode(CONTEXT)
    scores = await reference.score(CONTEXT, LABELS)
    for label, score in zip(LABELS, scores):
        assert reference.encode(CONTEXT + label) == prompt_ids + reference.encode(label)  # one text, same tokens
        reply = client.completions.create(
            model=MODEL, prompt=CONTEXT + label, echo=True, logprobs=1, max_tokens=0, temperature=0
        )
        (choice,) = reply.choices
        logprobs = choice.logprobs
        assert choice.text == CONTEXT + label  # max_tokens 0: the prompt alone, echoed
        assert logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None
        assert len(logprobs.tokens) == len(prompt_ids) + len(reference.encode(label))
        assert "".join(logprobs.tokens) == choice.text
        assert logprobs.text_offset == [len("".join(logprobs.tokens[:i])) for i in range(len(logprobs.tokens))]
        assert all(len(top) == 1 for top in logprobs.top_logprobs[1:])
        assert sum(logprobs.token_logprobs[len(prompt_ids) :]) == pytest.approx(score, abs=TOLERANCE)
        assert reply.usage.prompt_tokens == len(logprobs.tokens) and reply.usage.completion_tokens == 0


async def test_token_id_prompts_in_one_request_as_lm_eval_sends_them(client, reference):
    """lm-evaluation-harness's `local-completions`: token-id prompts, echo, logprobs=1, max_tokens=1;
    it sums token_logprobs[ctxlen:-1] and calls a continuation greedy when each of its tokens is the
    top-1 (its logprob equals the top_logprobs maximum)."""
    prompt_ids = reference.encode(CONTEXT)
    requests = [prompt_ids + reference.encode(label) for label in LABELS]
    reply = client.completions.create(
        model=MODEL, prompt=requests, echo=True, logprobs=1, max_tokens=1, temperature=0, seed=1234
    )
    choices = sorted(reply.choices, key=lambda c: c.index)
    assert [c.index for c in choices] == [0, 1]
    scores = await reference.score(CONTEXT, LABELS)
    for choice, tokens, score in zip(choices, requests, scores):
        logprobs = choice.logprobs
        assert len(logprobs.token_logprobs) == len(tokens) + 1  # the prompt, then the written token
        continuation = slice(len(prompt_ids), -1)
        assert sum(logprobs.token_logprobs[continuation]) == pytest.approx(score, abs=TOLERANCE)
        greedy = all(
            lp == max(top.values())
            for lp, top in zip(logprobs.token_logprobs[continuation], logprobs.top_logprobs[continuation])
        )
        scored = await reference.sequence_logprobs(tokens, top=1, start=len(prompt_ids))
        assert greedy == all(t.top[0].token_id == t.token_id for t in scored)
        # the written token is the greedy one: the likeliest after the whole prompt
        assert logprobs.token_logprobs[-1] == max(logprobs.top_logprobs[-1].values())


def test_written_tokens_carry_their_raw_log_probabilities(client):
    reply = client.completions.create(model=MODEL, prompt="1, 2, 3, 4,", max_tokens=6, temperature=0, logprobs=3)
    (choice,) = reply.choices
    logprobs = choice.logprobs
    assert "".join(logprobs.tokens) == choice.text and len(logprobs.tokens) == reply.usage.completion_tokens
    assert logprobs.text_offset[0] == 0 and None not in logprobs.token_logprobs  # not echoed: the reply only
    for lp, top in zip(logprobs.token_logprobs, logprobs.top_logprobs):
        assert len(top) == 3 and lp == max(top.values()) <= 0  # greedy: each token is the likeliest


def test_echo_without_logprobs_prefixes_each_prompt(client):
    reply = client.completions.create(model=MODEL, prompt=["Hello,", "1, 2,"], echo=True, max_tokens=3, n=2, seed=7)
    choices = sorted(reply.choices, key=lambda c: c.index)
    assert [c.text.split(",")[0] for c in choices] == ["Hello", "Hello", "1", "1"]  # prompt p: choices 2p, 2p + 1
    assert all(c.logprobs is None for c in choices)


def test_scoring_needs_a_whole_reply_and_known_tokens(client):
    with pytest.raises(openai.BadRequestError, match="not streamed"):
        client.completions.create(model=MODEL, prompt="Hi", logprobs=1, stream=True)
    with pytest.raises(openai.BadRequestError, match="not in the vocabulary"):
        client.completions.create(model=MODEL, prompt=[1, 2, 10**9], echo=True, logprobs=0, max_tokens=0)
    with pytest.raises(openai.UnprocessableEntityError, match="echo"):
        client.completions.create(model=MODEL, prompt="Hi", max_tokens=0)


async def test_the_openai_backend_scores_against_vireo_as_the_native_engine_does(api_server, celery_worker, reference):
    """Contract: Vireo's own `openai` backend pointed at this Vireo scores (echo + logprobs through
    /v1/completions) what the native engine scores in-process, within TOLERANCE."""
    remote = create_engine(
        EngineConfig(backend="openai", model=MODEL, openai_base_url=f"{api_server}/v1", openai_api_key=API_KEY)
    )
    await remote.start()
    try:
        assert remote.exact_tokens  # the model resolves locally: token ids are sent
        for context, labels in [(CONTEXT, LABELS), ("The capital of France is", [" Paris", " London", " a city"])]:
            assert await remote.score(context, labels) == pytest.approx(
                await reference.score(context, labels), abs=TOLERANCE
            )
    finally:
        await remote.shutdown()
