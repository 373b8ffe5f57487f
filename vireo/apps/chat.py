"""Chat: multi-turn conversation (or a raw completion prompt), streamed; the OpenAI endpoints use it.

The server keeps no conversation state: the client sends the previous messages (and a
`session_id` to tie turns together) with each turn and gets the updated history back. Re-sent
history is cheap because the engine's prefix cache recognises it. When a conversation outgrows
the context, the oldest turns are dropped (the system prompt and the latest message stay).
`n` answers are sampled at once (the engine batches them); `tools` may be called (tool_calling.py).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from vireo.apps.base import App, AppContext, AppInputError, TechniquePreferences
from vireo.apps.chat_tools import NamedToolChoice, Tool, ToolCall, ToolChoice, has_tool_history, tool_request
from vireo.apps.tool_calling import Reply, ToolCallingReply
from vireo.inference.api import Constraint, GenerationRequest


class OutputConstraint(BaseModel):
    """Restrict the reply to one of `choices`, a `regex`, or JSON matching `json_schema` (one of them)."""

    choices: list[str] | None = Field(None, min_length=1, max_length=256)
    regex: str | None = Field(None, min_length=1, max_length=2000)
    json_schema: dict | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "OutputConstraint":
        if sum(x is not None for x in (self.choices, self.regex, self.json_schema)) != 1:
            raise ValueError("give exactly one of choices, regex or json_schema")
        return self

    def to_engine(self) -> Constraint:
        return Constraint(choices=self.choices, regex=self.regex, json_schema=self.json_schema)


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[ToolCall] | None = Field(None, description="An assistant turn's calls of tools.")
    tool_call_id: str | None = Field(None, description="A tool turn: the id of the call it answers.")

    @model_validator(mode="after")
    def _content_or_calls(self) -> "ChatMessage":
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls")
        if self.content is None and not self.tool_calls:
            raise ValueError(f"a {self.role} message needs content")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs the tool_call_id of the call it answers")
        return self


class ChatInput(BaseModel):
    messages: list[ChatMessage] | None = Field(None, description="The conversation so far, oldest first.")
    prompt: str | None = Field(None, description="A raw prompt to continue (instead of messages).")
    system: str | None = Field(None, description="A system prompt placed before the messages.")
    session_id: str | None = Field(
        None, max_length=128, description="Ties the turns of one conversation together; echoed back."
    )
    overflow: Literal["drop_oldest", "error"] = Field(
        "drop_oldest", description="When the conversation outgrows the context: drop the oldest turns, or fail."
    )
    max_tokens: int = Field(256, ge=1, le=4096)
    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: list[str] = Field(default_factory=list, max_length=8)
    seed: int | None = None
    logprobs: bool = False
    constraint: OutputConstraint | None = Field(
        None, description="Constrain the reply (native and vllm engines; the hf engine refuses)."
    )
    n: int = Field(1, ge=1, le=8, description="How many answers to sample (each with seed + i when seeded).")
    tools: list[Tool] | None = Field(None, max_length=128, description="Functions the model may call.")
    tool_choice: ToolChoice | None = Field(
        None, description="none, auto (the default with tools), required, or {'function': {'name': ...}}."
    )
    parallel_tool_calls: bool = Field(True, description="Allow several calls in one reply.")

    @model_validator(mode="after")
    def _one_source(self) -> "ChatInput":
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give either messages or prompt")
        if self.messages is not None and not self.messages:
            raise ValueError("messages is empty: send at least one message")
        return self

    @model_validator(mode="after")
    def _tools_fit(self) -> "ChatInput":
        names = [t.function.name for t in self.tools or []]
        if len(set(names)) != len(names):
            raise ValueError("tool names must be unique")
        if self.tool_choice not in (None, "none", "auto") and not names:
            raise ValueError("tool_choice asks for a tool call but no tools were given")
        if isinstance(self.tool_choice, NamedToolChoice) and self.tool_choice.function.name not in names:
            raise ValueError(
                f"tool_choice names {self.tool_choice.function.name!r}, which is not among the "
                f"tools ({', '.join(names)})"
            )
        if self.calls_offered and self.prompt is not None:
            raise ValueError("tools need messages, not a raw prompt")
        if self.calls_offered and self.constraint is not None:
            raise ValueError("give tools or a constraint (response_format), not both")
        return self

    @property
    def calls_offered(self) -> bool:
        return bool(self.tools) and self.tool_choice != "none"


class ChatChoice(BaseModel):
    """One of the `n` sampled answers."""

    index: int
    text: str
    finish_reason: str = Field(..., description="stop, length, or tool_calls when the reply calls tools.")
    tool_calls: list[ToolCall] | None = None


class ChatOutput(BaseModel):
    text: str
    finish_reason: str
    tool_calls: list[ToolCall] | None = Field(None, description="The tools the reply calls (first answer).")
    choices: list[ChatChoice] = Field(
        default_factory=list, description="All n answers; the first is also text, finish_reason and tool_calls."
    )
    prompt_tokens: int = Field(..., description="The conversation's tokens.")
    completion_tokens: int = Field(..., description="Tokens generated, for all answers.")
    session_id: str | None = Field(None, description="The conversation's id (new when none was sent).")
    messages: list[ChatMessage] | None = Field(
        None, description="The history to send with the next turn: the kept messages plus this reply."
    )
    dropped_messages: int = Field(0, description="Oldest messages left out to fit the context.")


class ChatApp(App[ChatInput]):
    name = "chat"
    title = "Chat"
    description = "Talk with the model: multi-turn, with an optional system prompt."
    Input = ChatInput
    Output = ChatOutput
    preferences = TechniquePreferences(prefix_cache=True)  # later turns reuse earlier turns' KV

    @staticmethod
    def conversation(input: ChatInput) -> list[dict]:
        """The messages as the model sees them, with `system` replacing any system message."""
        messages = [m.model_dump(exclude_none=True) for m in input.messages or []]
        if input.system:
            messages = [{"role": "system", "content": input.system}] + [m for m in messages if m["role"] != "system"]
        return messages

    @staticmethod
    def fit(messages: list[dict], budget: int, count_tokens) -> tuple[list[dict], int]:
        """Drop the oldest non-system messages until the rest fit `budget` tokens."""
        kept, dropped = list(messages), 0
        while sum(count_tokens(m.get("content") or "") + 8 for m in kept) > budget:
            oldest = next((i for i, m in enumerate(kept[:-1]) if m["role"] != "system"), None)
            if oldest is None:
                break
            kept.pop(oldest)
            dropped += 1
        return kept, dropped

    def build_request(self, ctx: AppContext, input: ChatInput, messages: list[dict] | None = None) -> GenerationRequest:
        sampling = ctx.sampling(
            max_tokens=input.max_tokens,
            temperature=input.temperature,
            top_p=input.top_p,
            stop=input.stop,
            seed=input.seed,
            logprobs=input.logprobs,
        )
        constraint = input.constraint.to_engine() if input.constraint else None
        if input.prompt is not None:
            return GenerationRequest(prompt=input.prompt, sampling=sampling, constraint=constraint)
        return GenerationRequest(
            messages=messages or self.conversation(input), sampling=sampling, constraint=constraint
        )

    def validate_for_engine(self, input: ChatInput, engine_context_length: int, count_tokens) -> None:
        if input.prompt is not None:
            texts = [input.prompt]
        elif input.overflow == "drop_oldest":  # only the system prompt and the last message must fit
            assert input.messages is not None  # ChatInput's validator: messages when there is no prompt
            texts = [m["content"] for m in self.conversation(input) if m["role"] == "system"] + [
                input.messages[-1].content or ""
            ]
        else:
            texts = [m.get("content") or "" for m in self.conversation(input)]
        tokens = sum(count_tokens(t) for t in texts)
        if tokens >= engine_context_length:
            raise AppInputError(
                f"the conversation is {tokens} tokens; the model's context holds "
                f"{engine_context_length}. Drop older turns and try again"
            )

    async def run(self, ctx: AppContext, input: ChatInput) -> ChatOutput:
        messages, dropped = None, 0
        if input.messages is not None:
            budget = ctx.engine.context_length - min(input.max_tokens, ctx.engine.context_length // 2)
            messages, dropped = self.conversation(input), 0
            if input.overflow == "drop_oldest":
                messages, dropped = self.fit(messages, budget, ctx.engine.count_tokens)
        replies = await asyncio.gather(*(self.reply(ctx, input, messages, i) for i in range(input.n)))
        first = replies[0]
        history = None
        if messages is not None:
            history = [ChatMessage(**m) for m in messages] + [
                ChatMessage(
                    role="assistant",
                    content=first.text if first.text or not first.tool_calls else None,
                    tool_calls=first.tool_calls or None,
                )
            ]
        return ChatOutput(
            text=first.text,
            finish_reason=first.finish_reason,
            tool_calls=first.tool_calls or None,
            choices=[
                ChatChoice(index=i, text=r.text, finish_reason=r.finish_reason, tool_calls=r.tool_calls or None)
                for i, r in enumerate(replies)
            ],
            prompt_tokens=first.prompt_tokens,
            completion_tokens=sum(r.completion_tokens for r in replies),
            session_id=input.session_id or uuid.uuid4().hex,
            messages=history,
            dropped_messages=dropped,
        )

    async def reply(self, ctx: AppContext, input: ChatInput, messages: list[dict] | None, index: int) -> Reply:
        """Answer `index` of n: its own seed (seed + index), streamed as choice `index`."""
        request = self.build_request(ctx, input, messages)
        if index and request.sampling.seed is not None:
            request.sampling.seed += index
        if messages is not None and (input.tools or has_tool_history(messages)):
            offered = input.tools if input.calls_offered else None  # calls_offered: tools is not empty
            shown = tool_request(ctx.engine, messages, offered)
            request.messages, request.tools = shown.messages, shown.tools
            if offered:
                writer = ToolCallingReply(
                    ctx,
                    ctx.engine.render(request),
                    request.sampling,
                    offered,
                    input.tool_choice or "auto",
                    input.parallel_tool_calls,
                    index,
                )
                return await writer.run()
        final = await ctx.stream(request, index=index)
        return Reply(
            final.text,
            final.finish_reason,
            prompt_tokens=final.usage.prompt_tokens,
            completion_tokens=final.usage.completion_tokens,
        )
