"""Tools in a chat: their types, and how a conversation that uses them is shown to the model.

Two ways to show tools. A chat template that renders them itself and asks for calls as
`<tool_call>{"name": ..., "arguments": ...}</tool_call>` (Qwen2.5, Hermes and the many templates
that copied them) gets the tools and the history in the Hugging Face convention. Any other template
(one that ignores `tools`, like SmolLM2's, or one with a call format we cannot read back) gets the
same instructions as plain text in the system prompt, past calls as `<tool_call>` text and tool
results as `<tool_response>` user turns, the way those templates show them.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field

from vireo.inference.api import Engine, GenerationRequest

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
NO_ARGUMENTS = {"type": "object", "properties": {}, "additionalProperties": False}


class ToolFunction(BaseModel):
    name: str = Field(..., pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = Field(None, max_length=8000)
    parameters: dict | None = Field(None, description="JSON schema of the arguments object (none: no arguments).")
    strict: bool | None = Field(None, description="Accepted: arguments always match the schema here.")

    @property
    def arguments_schema(self) -> dict:
        return self.parameters if self.parameters else NO_ARGUMENTS


class Tool(BaseModel):
    """A function the model may call (the OpenAI `tools` item)."""

    type: Literal["function"] = "function"
    function: ToolFunction


class ToolCallFunction(BaseModel):
    name: str
    arguments: str = Field(..., description="The arguments as JSON text, as OpenAI sends them.")


class ToolCall(BaseModel):
    """One call the model made (or made in an earlier turn of the history)."""

    id: str
    type: Literal["function"] = "function"
    function: ToolCallFunction


class FunctionName(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    """Force a call of this one tool."""

    type: Literal["function"] = "function"
    function: FunctionName


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice

_PROBE = {
    "type": "function",
    "function": {"name": "vireo_probe_tool", "description": "A probe.", "parameters": NO_ARGUMENTS},
}


@lru_cache(maxsize=16)
def template_shows_tools(engine: Engine) -> bool:
    """True when the engine's chat template renders tools itself, in the `<tool_call>` format.

    Rendered with and without a probe tool: a template that ignores `tools` renders both alike.
    """
    probe = [{"role": "user", "content": "hi"}]
    try:
        with_tools = engine.render(GenerationRequest(messages=probe, tools=[_PROBE]))
        without = engine.render(GenerationRequest(messages=probe))
    except Exception:  # a template that cannot take tools at all
        return False
    return with_tools != without and "vireo_probe_tool" in with_tools and CALL_OPEN in with_tools


def call_text(name: str, arguments: str) -> str:
    """A call as the model writes it, between the markers (arguments as the JSON text they are)."""
    return f'{{"name": {json.dumps(name)}, "arguments": {arguments}}}'


def tools_prompt(tools: list[Tool]) -> str:
    """The tool instructions for a template that does not render tools (the Qwen2.5 wording)."""
    listed = "\n".join(json.dumps(t.model_dump(exclude_none=True), ensure_ascii=False) for t in tools)
    return (
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n"
        f"<tools>\n{listed}\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments within "
        f"{CALL_OPEN}{CALL_CLOSE} XML tags:\n"
        f'{CALL_OPEN}\n{{"name": <function-name>, "arguments": <args-json-object>}}\n{CALL_CLOSE}'
    )


def _arguments_value(arguments: str):
    """Templates want arguments as an object; text that is not JSON is passed on as it is."""
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def in_template_format(messages: list[dict], tools: list[Tool] | None) -> tuple[list[dict], list[dict] | None]:
    """Messages and tools for a template that renders tools (Hugging Face's convention)."""
    names = {c["id"]: c["function"]["name"] for m in messages for c in m.get("tool_calls") or []}
    shown = []
    for m in messages:
        if m.get("tool_calls"):
            shown.append(
                {
                    "role": "assistant",
                    "content": m.get("content") or "",
                    "tool_calls": [
                        {
                            "id": c["id"],
                            "type": "function",
                            "function": {
                                "name": c["function"]["name"],
                                "arguments": _arguments_value(c["function"]["arguments"]),
                            },
                        }
                        for c in m["tool_calls"]
                    ],
                }
            )
        elif m["role"] == "tool":
            shown.append(
                {
                    "role": "tool",
                    "content": m.get("content") or "",
                    "tool_call_id": m.get("tool_call_id"),
                    "name": names.get(m.get("tool_call_id"), ""),
                }
            )
        else:
            shown.append({"role": m["role"], "content": m.get("content") or ""})
    return shown, [t.model_dump(exclude_none=True) for t in tools] if tools else None


def as_plain_text(messages: list[dict], tools: list[Tool] | None) -> list[dict]:
    """Messages for a template that knows only roles and text: tools in the system prompt, calls
    and results as tagged text (consecutive results share one user turn)."""
    shown: list[dict] = []
    for m in messages:
        if m.get("tool_calls"):
            calls = "\n".join(
                f"{CALL_OPEN}\n{call_text(c['function']['name'], c['function']['arguments'])}\n{CALL_CLOSE}"
                for c in m["tool_calls"]
            )
            shown.append(
                {"role": "assistant", "content": (m.get("content") or "") + ("\n" if m.get("content") else "") + calls}
            )
        elif m["role"] == "tool":
            result = f"<tool_response>\n{m.get('content') or ''}\n</tool_response>"
            if shown and shown[-1].get("tool_results"):
                shown[-1]["content"] += "\n" + result
            else:
                shown.append({"role": "user", "content": result, "tool_results": True})
        else:
            shown.append({"role": m["role"], "content": m.get("content") or ""})
    shown = [{"role": m["role"], "content": m["content"]} for m in shown]
    if tools:
        if shown and shown[0]["role"] == "system":
            shown[0] = {"role": "system", "content": shown[0]["content"] + "\n\n" + tools_prompt(tools)}
        else:
            shown.insert(0, {"role": "system", "content": tools_prompt(tools)})
    return shown


def tool_request(engine: Engine, messages: list[dict], tools: list[Tool] | None) -> GenerationRequest:
    """A request whose rendering shows `tools` (None: none shown) and any tool history to the model."""
    if template_shows_tools(engine):
        shown, tool_dicts = in_template_format(messages, tools)
        return GenerationRequest(messages=shown, tools=tool_dicts)
    return GenerationRequest(messages=as_plain_text(messages, tools))


def has_tool_history(messages: list[dict]) -> bool:
    return any(m.get("tool_calls") or m["role"] == "tool" for m in messages)
