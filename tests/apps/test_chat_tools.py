"""How a conversation with tools reaches the model: the chat template's own tool format when it has
one, the system-prompt fallback when it ignores tools; and a call written through each."""

from __future__ import annotations

import json

import jsonschema
import pytest

from vireo.apps.base import LocalContext
from vireo.apps.chat import ChatApp, ChatMessage
from vireo.apps.chat_tools import Tool, template_shows_tools, tool_request, tools_prompt
from vireo.inference.factory import create_engine
from vireo.inference.local import EngineConfig

APP = ChatApp()
ARGS = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 30}},
    "required": ["city"],
    "additionalProperties": False,
}
TOOLS = [Tool(function={"name": "get_weather", "description": "The weather in a city.", "parameters": ARGS})]
HISTORY = [
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}},
        ],
    },
    {"role": "tool", "tool_call_id": "call_a", "content": "31 C, sunny"},
    {"role": "tool", "tool_call_id": "call_b", "content": "25 C, rain"},
]
# A Hermes-style template (the `<tool_call>` format Qwen2.5 and Hermes use), with its own wording.
HERMES = """{%- if tools %}<|im_start|>system
You are a function calling AI model. Function signatures:{% for tool in tools %}
<tools>{{ tool | tojson }}</tools>{% endfor %}
For each function call return a json object within <tool_call></tool_call> XML tags.<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == "tool" %}<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% elif message.tool_calls %}<|im_start|>assistant
{%- for call in message.tool_calls %}
<tool_call>
{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}
</tool_call>{% endfor %}<|im_end|>
{% else %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


def _rendered(engine, messages=HISTORY, tools=TOOLS) -> str:
    return engine.render(tool_request(engine, messages, tools))


def test_a_template_that_ignores_tools_gets_them_in_the_system_prompt(hf_engine):
    assert not template_shows_tools(hf_engine)  # SmolLM2's template renders role and content only
    prompt = _rendered(hf_engine)
    assert tools_prompt(TOOLS) in prompt and '"name": "get_weather"' in prompt
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>' in prompt
    # both results in one user turn, in order
    assert "<|im_start|>user\n<tool_response>\n31 C, sunny\n</tool_response>\n<tool_response>\n25 C, rain" in prompt


def test_without_tools_on_offer_the_history_still_shows_calls_and_results(hf_engine):
    prompt = _rendered(hf_engine, tools=None)
    assert "# Tools" not in prompt and "<tool_response>\n25 C, rain" in prompt


@pytest.fixture(scope="module")
async def hermes_engine():
    """The native engine on SmolLM2's weights with a tool-aware template in place of its own."""
    engine = create_engine(EngineConfig(backend="native", model="smollm2-135m", kv_cache_tokens=4096))
    engine.tokenizer.chat_template = HERMES
    await engine.start()
    yield engine
    await engine.shutdown()


def test_a_template_with_tools_renders_them_its_own_way(hermes_engine):
    assert template_shows_tools(hermes_engine)
    prompt = _rendered(hermes_engine)
    assert "You are a function calling AI model" in prompt and "# Tools" not in prompt
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in prompt
    assert "<tool_response>\n31 C, sunny\n</tool_response>" in prompt


async def test_a_required_call_through_the_templates_format_matches_the_schema(hermes_engine):
    ctx = LocalContext(engine=hermes_engine, app_name="chat")
    out = await APP.run(
        ctx,
        APP.Input(
            messages=[{"role": "user", "content": "Weather in Oslo?"}],
            tools=[t.model_dump() for t in TOOLS],
            tool_choice="required",
            parallel_tool_calls=False,
            max_tokens=40,
            temperature=0,
        ),
    )
    assert out.finish_reason == "tool_calls" and len(out.tool_calls) == 1
    jsonschema.validate(json.loads(out.tool_calls[0].function.arguments), ARGS)
    streamed = "".join(d["arguments"] for d in ctx.tool_call_deltas)
    assert streamed == out.tool_calls[0].function.arguments and ctx.tool_call_deltas[0]["name"] == "get_weather"
    assert out.messages[-1].tool_calls == out.tool_calls and out.messages[-1].content is None


def test_a_tool_message_must_say_which_call_it_answers():
    with pytest.raises(ValueError, match="tool_call_id"):
        ChatMessage(role="tool", content="31 C")
    with pytest.raises(ValueError, match="needs content"):
        ChatMessage(role="user")


def test_tools_and_a_response_format_together_are_refused():
    with pytest.raises(ValueError, match="not both"):
        APP.Input(
            messages=[{"role": "user", "content": "hi"}],
            tools=[t.model_dump() for t in TOOLS],
            constraint={"choices": ["a", "b"]},
        )
