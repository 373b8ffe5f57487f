"""OpenAI fields beyond the basics, with the real `openai` client: usage in streams, n choices, and a
400 naming any field the server cannot honour (docs/OPENAI.md)."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import API_KEY

MODEL = "smollm2-135m"
STORY = [{"role": "user", "content": "Tell me a short story about a fox."}]


@pytest.fixture(scope="module")
def client(api_server, celery_worker):
    return openai.OpenAI(base_url=f"{api_server}/v1", api_key=API_KEY, max_retries=0, timeout=120)


def test_include_usage_ends_the_stream_with_a_usage_chunk(client):
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=STORY,
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    *body, last = chunks
    assert last.choices == [] and last.usage.prompt_tokens > 5
    assert last.usage.completion_tokens == 12 and last.usage.total_tokens == last.usage.prompt_tokens + 12
    assert body and all(c.usage is None and len(c.choices) == 1 for c in body)


def test_without_include_usage_no_chunk_carries_usage(client):
    chunks = list(client.chat.completions.create(model=MODEL, messages=STORY, max_tokens=4, stream=True))
    assert all(c.choices and c.usage is None for c in chunks)


def test_completions_stream_include_usage_too(client):
    chunks = list(
        client.completions.create(
            model=MODEL, prompt="Once upon a time", max_tokens=6, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 6


def test_n_2_samples_two_choices_each_with_its_own_seed(client):
    ask = dict(model=MODEL, messages=STORY, max_tokens=24, temperature=1.0, seed=11, n=2)
    reply = client.chat.completions.create(**ask)
    texts = [c.message.content for c in reply.choices]
    assert [c.index for c in reply.choices] == [0, 1] and texts[0] != texts[1] and all(texts)
    assert [c.message.content for c in client.chat.completions.create(**ask).choices] == texts  # seeded
    single = client.chat.completions.create(**{**ask, "n": 1})
    assert single.choices[0].message.content == texts[0]  # choice 0 uses the seed itself, choice i seed + i
    assert reply.usage.completion_tokens > single.usage.completion_tokens  # both choices counted


def test_n_2_streams_each_choice_under_its_index(client):
    ask = dict(model=MODEL, messages=STORY, max_tokens=16, temperature=1.0, seed=12, n=2)
    whole = [c.message.content for c in client.chat.completions.create(**ask).choices]
    streamed = {0: "", 1: ""}
    finished = set()
    for chunk in client.chat.completions.create(stream=True, **ask):
        for choice in chunk.choices:
            streamed[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finished.add(choice.index)
    assert [streamed[0], streamed[1]] == whole and finished == {0, 1}


def test_completions_take_n_too(client):
    reply = client.completions.create(
        model=MODEL, prompt="My favourite animal is", max_tokens=8, temperature=1.0, seed=3, n=2
    )
    assert len(reply.choices) == 2 and reply.choices[0].text != reply.choices[1].text


@pytest.mark.parametrize(
    "field, value",
    [
        ("frequency_penalty", 0.5),
        ("presence_penalty", -1.0),
        ("logit_bias", {"42": -100}),
        ("logprobs", True),
        ("top_logprobs", 3),
        ("functions", [{"name": "f", "parameters": {}}]),
        ("audio", {"voice": "alloy"}),
        ("reasoning_effort", "high"),
        ("made_up_field", 1),
    ],
)
def test_a_field_the_server_cannot_honour_is_a_400_naming_it(client, field, value):
    with pytest.raises(openai.BadRequestError, match=field):
        client.chat.completions.create(model=MODEL, messages=STORY, max_tokens=2, extra_body={field: value})


def test_an_unsupported_message_field_is_a_400_naming_where(client):
    with pytest.raises(openai.BadRequestError, match=r"messages\[0\]\.function_call"):
        client.chat.completions.create(
            model=MODEL,
            max_tokens=2,
            messages=[{"role": "user", "content": "hi", "function_call": {"name": "f", "arguments": "{}"}}],
        )


def test_bookkeeping_fields_and_neutral_values_are_accepted(client):
    reply = client.chat.completions.create(
        model=MODEL,
        messages=STORY,
        max_tokens=2,
        user="someone",
        metadata={"team": "a"},
        store=False,
        frequency_penalty=0,
        presence_penalty=0.0,
        logit_bias={},
        logprobs=False,
        service_tier="auto",
        parallel_tool_calls=True,
    )
    assert reply.choices[0].message.content is not None


def test_completions_refuse_best_of_and_suffix(client):
    for field, value in (("best_of", 3), ("suffix", "end")):
        with pytest.raises(openai.BadRequestError, match=field):
            client.completions.create(model=MODEL, prompt="Hi", max_tokens=2, extra_body={field: value})


def test_a_tiny_top_p_samples_the_greedy_reply(client):
    greedy = client.chat.completions.create(model=MODEL, messages=STORY, max_tokens=12, temperature=0)
    nucleus = client.chat.completions.create(
        model=MODEL, messages=STORY, max_tokens=12, temperature=1.5, top_p=1e-6, seed=5
    )
    assert nucleus.choices[0].message.content == greedy.choices[0].message.content


def test_chat_stop_ends_the_reply_before_the_stop_string(client):
    reply = client.chat.completions.create(
        model=MODEL,
        max_tokens=30,
        temperature=0,
        stop=["5"],
        messages=[{"role": "user", "content": "Count from 1 to 10."}],
    )
    assert "5" not in reply.choices[0].message.content and reply.choices[0].finish_reason == "stop"


def test_response_format_json_object_gives_a_json_object(client):
    import json

    reply = client.chat.completions.create(
        model=MODEL,
        max_tokens=60,
        temperature=0,
        response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "What is the capital of France? Answer in JSON."}],
    )
    assert isinstance(json.loads(reply.choices[0].message.content), dict)


def test_completions_take_structured_outputs(client):
    reply = client.completions.create(
        model=MODEL,
        prompt="The sky is",
        max_tokens=4,
        temperature=1.0,
        seed=2,
        extra_body={"structured_outputs": {"choice": ["blue", "green"]}},
    )
    assert reply.choices[0].text in ("blue", "green")


def test_developer_role_is_a_system_message(client):
    def reply(role: str) -> str:
        return (
            client.chat.completions.create(
                model=MODEL,
                max_tokens=12,
                temperature=0,
                messages=[
                    {"role": role, "content": "You are a pirate. Talk like one."},
                    {"role": "user", "content": "Hi"},
                ],
            )
            .choices[0]
            .message.content
        )

    assert reply("developer") == reply("system") != reply("user")


def test_an_unsupported_message_part_is_a_400(client):
    with pytest.raises(openai.BadRequestError, match="input_audio"):
        client.chat.completions.create(
            model=MODEL,
            max_tokens=2,
            messages=[
                {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}
            ],
        )


def test_every_test_the_openai_table_names_exists():
    """docs/OPENAI.md names a test for each supported row; each must be a real test."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    doc = (root / "docs" / "OPENAI.md").read_text()
    named = re.findall(r"`([\w/]+\.py)::(test_\w+)`", doc)
    assert len(named) > 20
    for file_name, test in named:
        path = next(iter(sorted(root.glob(f"tests/**/{file_name}"))), None)
        assert path is not None, f"docs/OPENAI.md names {file_name}, which is not under tests/"
        assert f"def {test}(" in path.read_text(), f"docs/OPENAI.md names {file_name}::{test}, which does not exist"
