"""The `chat` app's choices as OpenAI's (requests go the other way in openai_requests.py).

The chat app owns tool calling (vireo/apps/tool_calling.py); this module only renames its `choices`
(text, finish reason, tool calls) into OpenAI's chat and completion choices.
"""

from __future__ import annotations

FINISH = {"stop": "stop", "length": "length", "abort": "stop", "error": "stop", "tool_calls": "tool_calls"}


def choices_of(result: dict) -> list[dict]:
    """The app's answers, oldest result shapes included (a single `text`; a caption)."""
    if result.get("choices"):
        return result["choices"]
    text = result["text"] if "text" in result else result.get("caption", "")
    return [
        {
            "index": 0,
            "text": text,
            "finish_reason": result.get("finish_reason", "stop"),
            "tool_calls": result.get("tool_calls"),
        }
    ]


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
    """An answer as an OpenAI completion choice, with its tokens' `logprobs` when they were asked for."""
    return {
        "index": choice["index"],
        "text": choice["text"],
        "finish_reason": finish_reason(choice),
        "logprobs": choice.get("logprobs"),
    }
