"""OpenAI chat messages, tools and choices to and from the `chat` app's input and result.

The chat app owns tool calling (vireo/apps/tool_calling.py); this module only renames: OpenAI's
`tool_calls` and `role: "tool"` messages become the app's history, its `choices` become OpenAI's.
"""

from __future__ import annotations

from vireo.apps.chat_tools import ToolCall

FINISH = {"stop": "stop", "length": "length", "abort": "stop", "error": "stop", "tool_calls": "tool_calls"}


def chat_message(role: str, text: str, tool_calls: list[ToolCall] | None, tool_call_id: str | None) -> dict:
    """One OpenAI message as the chat app takes it (`developer` is a system message to us)."""
    message: dict = {"role": "system" if role == "developer" else role,
                     "content": None if tool_calls and not text else text}
    if tool_calls:
        message["tool_calls"] = [c.model_dump() for c in tool_calls]
    if tool_call_id is not None:
        message["tool_call_id"] = tool_call_id
    return message


def tool_fields(body) -> dict:
    """The chat app's tool fields from the request (none when no tools were sent)."""
    fields: dict = {}
    if body.tools:
        fields["tools"] = [t.model_dump(exclude_none=True) for t in body.tools]
    if body.tool_choice is not None:
        choice = body.tool_choice
        fields["tool_choice"] = choice if isinstance(choice, str) else choice.model_dump()
    if body.parallel_tool_calls is not None:
        fields["parallel_tool_calls"] = body.parallel_tool_calls
    return fields


def choices_of(result: dict) -> list[dict]:
    """The app's answers, oldest result shapes included (a single `text`; a caption)."""
    if result.get("choices"):
        return result["choices"]
    text = result["text"] if "text" in result else result.get("caption", "")
    return [{"index": 0, "text": text, "finish_reason": result.get("finish_reason", "stop"),
             "tool_calls": result.get("tool_calls")}]


def finish_reason(choice: dict) -> str:
    return FINISH.get(choice.get("finish_reason") or "stop", "stop")


def chat_choice(choice: dict) -> dict:
    """An answer as an OpenAI chat choice: content null when the reply is only tool calls."""
    calls = choice.get("tool_calls") or None
    message = {"role": "assistant", "content": choice["text"] if choice["text"] or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return {"index": choice["index"], "message": message, "finish_reason": finish_reason(choice), "logprobs": None}


def completion_choice(choice: dict) -> dict:
    return {"index": choice["index"], "text": choice["text"], "finish_reason": finish_reason(choice),
            "logprobs": None}
