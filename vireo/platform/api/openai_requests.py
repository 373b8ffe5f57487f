"""OpenAI requests as Vireo jobs: the request models, which model a request names, the job each one
becomes, and the reply built from a finished job. No HTTP here: the OpenAI routes (openai_compat.py)
and the Batch API's lines (openai_batches.py) both translate through this module, so a batch line is
refused, submitted and answered exactly as the same single request would be.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

from fastapi import HTTPException, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vireo.apps.caption.app import CaptionApp, CaptionInput
from vireo.apps.chat import ChatApp, ChatInput, ChatMessage, OutputConstraint, Prompt
from vireo.apps.chat_tools import Tool, ToolCall, ToolChoice
from vireo.apps.completion_logprobs import MAX_TOP_LOGPROBS
from vireo.platform.api.openai_tools import chat_choice, choices_of, completion_choice
from vireo.platform.api.schemas import SEED_LIMIT
from vireo.platform.errors import InvalidInput
from vireo.platform.served_model import ServedModel, find_served, served_models
from vireo.platform.settings import Settings

# Fields not declared here reach `refuse_unsupported`: a 400 naming them unless ignorable (openai_fields.py).
OPEN: ConfigDict = {"allow_inf_nan": False, "extra": "allow"}


class OpenAIMessage(BaseModel):
    model_config = OPEN
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = Field(None, description="Accepted and ignored.")
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class StreamOptions(BaseModel):
    model_config = OPEN
    include_usage: bool = False


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: dict[str, Any] | None = Field(None, description='{"name": ..., "schema": {...}}')


class SampledRequest(BaseModel):
    """What chat and (legacy) completion requests share: the model, sampling, streaming, structure."""

    model_config = OPEN
    model: str
    stream: bool = False
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=0, lt=SEED_LIMIT)
    stop: str | list[str] | None = None
    n: int = Field(1, ge=1, le=8)
    stream_options: StreamOptions | None = None
    structured_outputs: dict[str, Any] | None = Field(
        None, description="vLLM-style: {'choice': [...]} | {'regex': ...} | {'json': schema}"
    )


class ChatCompletionRequest(SampledRequest):
    messages: list[OpenAIMessage] = Field(..., min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = Field(None, max_length=128)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None


class CompletionRequest(SampledRequest):
    prompt: str | list[int] | list[Prompt] = Field(
        ..., description="Text, token ids, or a list of either (each prompt gets `n` choices)."
    )
    max_tokens: int | None = Field(16, ge=0, description="0 with echo: only score the prompt.")
    echo: bool = Field(False, description="Each choice's text (and logprobs) starts with its prompt.")
    logprobs: int | None = Field(
        None,
        ge=0,
        le=MAX_TOP_LOGPROBS,
        description="The tokens' log-probabilities, with this many likeliest alternatives at each position.",
    )


def requested_model(settings: Settings, name: str) -> ServedModel:
    """The served model `name` asks for (by any name `/v1/models` lists, its id or its configured value);
    404 naming what is served otherwise."""
    served = find_served(settings, name)
    if served is None:
        names = ", ".join(repr(m.name) for m in served_models(settings))
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"model {name!r} is not served here; this server serves {names}")
    return served


def chat_job(body: ChatCompletionRequest) -> tuple[str, dict]:
    """The app and input of a chat completion's job: `caption` when the last user turn carries an
    image, `chat` otherwise. Inputs are built as the apps' own models, so their field names are checked
    (by mypy, and by pydantic here); the job API validates the dumped input again at submit."""
    image_url = _image_url_of(body.messages)
    if image_url is not None:
        if body.n > 1 or body.tools:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                "a message with an image is captioned: n > 1 and tools are not supported with image input",
            )
        style = _text_of(next(m for m in reversed(body.messages) if m.role == "user")).strip()
        caption = _app_input(
            lambda: CaptionInput(
                image_base64=image_url,
                style=style[:200] or None,
                max_tokens=min(300, max(8, body.max_completion_tokens or body.max_tokens or 60)),
            )
        )
        return CaptionApp.name, caption
    messages = [_chat_message(m) for m in body.messages]
    chat = _app_input(
        lambda: _sampled(
            ChatInput(
                messages=messages,
                n=body.n,
                max_tokens=body.max_completion_tokens or body.max_tokens or 256,
                stop=_stops(body),
                seed=body.seed,
                constraint=_constraint(body),
                tools=body.tools or None,
                tool_choice=body.tool_choice,
            ),
            body,
            parallel_tool_calls=body.parallel_tool_calls,
        )
    )
    return ChatApp.name, chat


def completion_job(body: CompletionRequest) -> tuple[str, dict]:
    """The app and input of a (legacy) completion's job: the chat app continuing a raw prompt (or
    several), echoing it and scoring the tokens when asked."""
    if body.stream and (body.echo or body.logprobs is not None):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "echo and logprobs are not streamed: the tokens are scored once the reply is written; "
            "send the request without stream",
        )
    scoring: dict[str, Any] = {"echo": True} if body.echo else {}
    if body.logprobs is not None:
        scoring |= {"logprobs": True, "top_logprobs": body.logprobs}
    chat = _app_input(
        lambda: _sampled(
            ChatInput(
                prompt=body.prompt,
                n=body.n,
                max_tokens=16 if body.max_tokens is None else body.max_tokens,
                stop=_stops(body),
                seed=body.seed,
                constraint=_constraint(body),
                **scoring,
            ),
            body,
        )
    )
    return ChatApp.name, chat


def _sampled(chat: ChatInput, body: SampledRequest, parallel_tool_calls: bool | None = None) -> ChatInput:
    """Fields the request may leave out, so the app's defaults hold: set only when given (the request
    model has already checked their ranges, which are the app's too)."""
    if body.temperature is not None:
        chat.temperature = body.temperature
    if body.top_p is not None:
        chat.top_p = body.top_p
    if parallel_tool_calls is not None:
        chat.parallel_tool_calls = parallel_tool_calls
    return chat


def _app_input(build: Callable[[], BaseModel]) -> dict:
    """The app's input as the job stores it (the fields that were given); a value the app refuses is a
    422 naming it, as the same value sent to the job API would be."""
    try:
        return build().model_dump(mode="json", exclude_unset=True)
    except ValidationError as exc:
        raise InvalidInput(
            [
                {"loc": ["body", "input", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False, include_context=False)
            ]
        ) from exc


def _chat_message(message: OpenAIMessage) -> ChatMessage:
    """One OpenAI message as the chat app takes it (`developer` is a system message to us). Built
    unvalidated: the job API validates the whole input at submit, so a bad message is a 422 naming
    its place in `messages`."""
    text = _text_of(message)
    role = "system" if message.role == "developer" else message.role
    return ChatMessage.model_construct(
        role=role,
        content=None if message.tool_calls and not text else text,
        tool_calls=message.tool_calls,
        tool_call_id=message.tool_call_id,
    )


def chat_reply(job_id: str, created: int, model: str, result: dict, record: dict) -> dict:
    return {
        "id": f"chatcmpl-{job_id}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [chat_choice(c) for c in choices_of(result)],
        "usage": usage(record),
    }


def completion_reply(job_id: str, created: int, model: str, result: dict, record: dict) -> dict:
    return {
        "id": f"cmpl-{job_id}",
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [completion_choice(c) for c in choices_of(result)],
        "usage": usage(record),
    }


def usage(record: dict) -> dict:
    """Token counts the worker recorded for the whole job (every engine call of its app)."""
    prompt, completion = int(record.get("prompt_tokens") or 0), int(record.get("completion_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _text_of(message: OpenAIMessage) -> str:
    if isinstance(message.content, list):
        return "\n".join(
            part["text"] for part in message.content if part.get("type") == "text" and isinstance(part.get("text"), str)
        )
    return message.content or ""


def _image_url_of(messages: list[OpenAIMessage]) -> str | None:
    """The last user image part's URL, if the conversation has one (answered by the caption app)."""
    for message in reversed(messages):
        if message.role == "user" and isinstance(message.content, list):
            for part in message.content:
                if part.get("type") == "image_url":
                    url = (
                        (part.get("image_url") or {}).get("url")
                        if isinstance(part.get("image_url"), dict)
                        else part.get("image_url")
                    )
                    if not isinstance(url, str) or not url.startswith("data:image/"):
                        raise HTTPException(
                            status.HTTP_400_BAD_REQUEST,
                            "image_url must be a data:image/...;base64, URL; this server "
                            "does not fetch images from the network",
                        )
                    return url
    return None


def _constraint(body: SampledRequest) -> OutputConstraint | None:
    """The chat app's `constraint` from OpenAI `response_format` or vLLM-style `structured_outputs`."""
    structured = body.structured_outputs or {}
    known = {"choice": "choices", "regex": "regex", "json": "json_schema"}
    if structured:
        unknown = set(structured) - set(known)
        if unknown or len(structured) != 1:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, "structured_outputs takes exactly one of 'choice', 'regex' or 'json'"
            )
        ((key, value),) = structured.items()
        return OutputConstraint.model_validate({known[key]: value})
    fmt = getattr(body, "response_format", None)
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return OutputConstraint(json_schema={"type": "object"})
    schema = (fmt.json_schema or {}).get("schema")
    if not isinstance(schema, dict):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "response_format json_schema needs {'json_schema': {'name': ..., 'schema': {...}}}",
        )
    return OutputConstraint(json_schema=schema)


def _stops(body: SampledRequest) -> list[str]:
    return [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
