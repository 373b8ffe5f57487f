"""LangChain's `ChatOpenAI` against our OpenAI face: bound tools, structured output by function calling,
and the tool-calling loop of an agent, on SmolLM2-135M.

The 135M model does not choose to call a tool by itself (see test_openai_tools.py), so the agent
loop forces the first step's call with `tool_choice` and lets the model answer freely after the
tool's result: the loop's mechanics (call → ToolMessage → answer) are what is tested, not the
model's judgement.
"""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from tests.conftest import API_KEY


@tool
def get_weather(city: str) -> str:
    """The weather in a city now."""
    return f'{{"city": "{city}", "temperature_celsius": 31, "sky": "sunny"}}'


class CityFacts(BaseModel):
    """Facts about a city."""

    city: str = Field(description="The city's name", max_length=40)
    country: str = Field(description="The country it is in", max_length=40)
    population: int = Field(description="How many people live there", ge=0)


@pytest.fixture(scope="module")
def llm(api_server, celery_worker):
    return ChatOpenAI(
        base_url=f"{api_server}/v1",
        api_key=API_KEY,
        model="smollm2-135m",
        temperature=0,
        max_tokens=64,
        max_retries=0,
        timeout=120,
    )


def test_bind_tools_gets_a_parsed_tool_call(llm):
    message = llm.bind_tools([get_weather], tool_choice="required").invoke("What is the weather in Paris?")
    assert [c["name"] for c in message.tool_calls] == ["get_weather"]
    assert isinstance(message.tool_calls[0]["args"]["city"], str) and message.tool_calls[0]["id"]
    assert not message.invalid_tool_calls


def test_with_structured_output_by_function_calling_returns_the_object(llm):
    facts = llm.with_structured_output(CityFacts, method="function_calling").invoke("Give facts about Paris, France.")
    assert isinstance(facts, CityFacts) and facts.city


def test_structured_output_streams_too(llm):
    chunks = list(llm.with_structured_output(CityFacts, method="function_calling").stream("Facts about Rome."))
    assert chunks and isinstance(chunks[-1], CityFacts)


def test_an_agent_loop_calls_the_tool_and_answers_from_its_result(llm):
    messages = [HumanMessage("What is the weather in Paris right now?")]
    call = llm.bind_tools([get_weather], tool_choice="get_weather").invoke(messages)
    messages.append(call)
    for tool_call in call.tool_calls:
        messages.append(ToolMessage(get_weather.invoke(tool_call["args"]), tool_call_id=tool_call["id"]))
    answer = llm.bind_tools([get_weather]).invoke(messages)
    assert not answer.tool_calls and answer.content
    assert "31" in answer.content  # the tool's result reached the model
