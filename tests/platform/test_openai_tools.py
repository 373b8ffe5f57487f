"""OpenAI tool calling through the real API, worker and SmolLM2-135M, with the real `openai` client.

The arguments of every call are written under the tool's JSON schema (constrained decoding), so
they parse and match it whatever the model. What a 135M model cannot do is decide well: with
`tool_choice: auto` it calls a tool only when it writes `<tool_call>` itself, which it does when
told to in so many words ("Repeat after me: <tool_call>") and not for a weather question.
"""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from tests.conftest import API_KEY

MODEL = "smollm2-135m"
WEATHER_ARGS = {
    "type": "object",
    "additionalProperties": False,
    "required": ["city", "unit"],
    "properties": {
        "city": {"type": "string", "maxLength": 40},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
}
TIME_ARGS = {
    "type": "object",
    "additionalProperties": False,
    "required": ["timezone"],
    "properties": {"timezone": {"type": "string", "maxLength": 40}},
}
TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "The weather in a city now.", "parameters": WEATHER_ARGS},
    },
    {
        "type": "function",
        "function": {"name": "get_time", "description": "The time in a timezone now.", "parameters": TIME_ARGS},
    },
]
SCHEMAS = {"get_weather": WEATHER_ARGS, "get_time": TIME_ARGS}
ASK_WEATHER = [{"role": "user", "content": "What is the weather like in Paris today?"}]


@pytest.fixture(scope="module")
def client(api_server, celery_worker):
    return openai.OpenAI(base_url=f"{api_server}/v1", api_key=API_KEY, max_retries=0, timeout=120)


def _assert_valid_call(call) -> dict:
    assert call.type == "function" and call.id.startswith("call_")
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, SCHEMAS[call.function.name])
    return arguments


def test_required_tool_choice_calls_a_tool_with_arguments_matching_its_schema(client):
    reply = client.chat.completions.create(
        model=MODEL, messages=ASK_WEATHER, tools=TOOLS, tool_choice="required", max_tokens=64, temperature=0
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert len(choice.message.tool_calls) >= 1
    for call in choice.message.tool_calls:
        _assert_valid_call(call)
    assert choice.message.tool_calls[0].function.name == "get_weather"
    assert reply.usage.completion_tokens > 0


def test_a_named_tool_choice_calls_that_tool_once(client):
    reply = client.chat.completions.create(
        model=MODEL,
        messages=ASK_WEATHER,
        tools=TOOLS,
        max_tokens=64,
        temperature=0.8,
        seed=4,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    calls = reply.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_time"]
    _assert_valid_call(calls[0])


def test_auto_calls_a_tool_when_the_model_opens_a_call(client):
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Repeat after me: <tool_call>"}],
        tools=TOOLS,
        max_tokens=64,
        temperature=0,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    _assert_valid_call(choice.message.tool_calls[0])


def test_auto_answers_in_text_when_the_model_writes_no_call(client):
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Write a haiku about the sea."}],
        tools=TOOLS,
        tool_choice="auto",
        max_tokens=32,
        temperature=0,
    )
    choice = reply.choices[0]
    assert choice.finish_reason in ("stop", "length") and not choice.message.tool_calls
    assert choice.message.content and "<tool_call>" not in choice.message.content


def test_tool_choice_none_never_calls(client):
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Repeat after me: <tool_call>"}],
        tools=TOOLS,
        tool_choice="none",
        max_tokens=16,
        temperature=0,
    )
    assert not reply.choices[0].message.tool_calls and reply.choices[0].finish_reason in ("stop", "length")


def test_a_tool_result_fed_back_reaches_the_model(client):
    """Turn 2: the assistant's call and the tool's result are in the history; the answer draws on it."""
    first = client.chat.completions.create(
        model=MODEL,
        messages=ASK_WEATHER,
        tools=TOOLS,
        max_tokens=64,
        temperature=0,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    call = first.choices[0].message.tool_calls[0]
    history = ASK_WEATHER + [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature_celsius": 31, "sky": "sunny"})},
    ]
    second = client.chat.completions.create(model=MODEL, messages=history, tools=TOOLS, max_tokens=40, temperature=0)
    answer = second.choices[0].message
    assert second.choices[0].finish_reason in ("stop", "length") and not answer.tool_calls
    assert "31" in answer.content  # the tool's number, which the question alone could not give


def test_streamed_tool_call_deltas_reassemble_into_the_same_call(client):
    arguments = dict(
        model=MODEL,
        messages=ASK_WEATHER,
        tools=TOOLS,
        max_tokens=64,
        temperature=0,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    whole = client.chat.completions.create(**arguments).choices[0].message.tool_calls[0]
    chunks = list(client.chat.completions.create(stream=True, **arguments))
    calls: dict[int, dict] = {}
    for chunk in chunks:
        for delta in chunk.choices[0].delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
            call["id"] = delta.id or call["id"]
            call["name"] += (delta.function.name or "") if delta.function else ""
            call["arguments"] += (delta.function.arguments or "") if delta.function else ""
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert len(calls) == 1 and calls[0]["id"].startswith("call_")
    assert (calls[0]["name"], calls[0]["arguments"]) == (whole.function.name, whole.function.arguments)
    assert sum(1 for c in chunks if c.choices[0].delta.tool_calls) > 2  # the arguments came in pieces


def test_tool_choice_naming_an_unknown_tool_is_refused(client):
    with pytest.raises(openai.UnprocessableEntityError, match="not among the tools"):
        client.chat.completions.create(
            model=MODEL,
            messages=ASK_WEATHER,
            tools=TOOLS,
            max_tokens=8,
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )


def test_parallel_tool_calls_false_gives_one_call(client):
    reply = client.chat.completions.create(
        model=MODEL,
        messages=ASK_WEATHER,
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=64,
        temperature=0.9,
        seed=2,
    )
    assert len(reply.choices[0].message.tool_calls) == 1
    _assert_valid_call(reply.choices[0].message.tool_calls[0])


def test_a_stop_string_never_cuts_a_calls_arguments(client):
    reply = client.chat.completions.create(
        model=MODEL,
        messages=ASK_WEATHER,
        tools=TOOLS,
        tool_choice="required",
        stop=["}", '"'],
        max_tokens=64,
        temperature=0,
    )
    _assert_valid_call(reply.choices[0].message.tool_calls[0])


def test_a_call_cut_by_max_tokens_ends_with_length(client):
    reply = client.chat.completions.create(
        model=MODEL, messages=ASK_WEATHER, tools=TOOLS, tool_choice="required", max_tokens=3, temperature=0
    )
    assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens <= 3


def test_a_malformed_tool_call_in_the_history_is_refused(client):
    with pytest.raises(openai.UnprocessableEntityError, match="tool_calls"):
        client.chat.completions.create(
            model=MODEL,
            max_tokens=4,
            messages=ASK_WEATHER
            + [{"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function", "function": "oops"}]}],
        )
