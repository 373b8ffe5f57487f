"""Chat: multi-turn conversation (or a raw completion prompt), streamed; the OpenAI endpoints use it.

The server keeps no conversation state: the client sends the previous messages (and a
`session_id` to tie turns together) with each turn and gets the updated history back. Re-sent
history is cheap because the engine's prefix cache recognises it. When a conversation outgrows
the context, the oldest turns are dropped (the system prompt and the latest message stay).
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from vireo.apps.base import App, AppContext, AppInputError, TechniquePreferences
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
    role: Literal["system", "user", "assistant"]
    content: str


class ChatInput(BaseModel):
    messages: list[ChatMessage] | None = Field(None, description="The conversation so far, oldest first.")
    prompt: str | None = Field(None, description="A raw prompt to continue (instead of messages).")
    system: str | None = Field(None, description="A system prompt placed before the messages.")
    session_id: str | None = Field(None, max_length=128,
                                   description="Ties the turns of one conversation together; echoed back.")
    overflow: Literal["drop_oldest", "error"] = Field(
        "drop_oldest", description="When the conversation outgrows the context: drop the oldest turns, or fail.")
    max_tokens: int = Field(256, ge=1, le=4096)
    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: list[str] = Field(default_factory=list, max_length=8)
    seed: int | None = None
    logprobs: bool = False
    constraint: OutputConstraint | None = Field(
        None, description="Constrain the reply (native and vllm engines; the hf engine refuses).")

    @model_validator(mode="after")
    def _one_source(self) -> "ChatInput":
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give either messages or prompt")
        if self.messages is not None and not self.messages:
            raise ValueError("messages is empty: send at least one message")
        return self


class ChatOutput(BaseModel):
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    session_id: str | None = Field(None, description="The conversation's id (new when none was sent).")
    messages: list[ChatMessage] | None = Field(
        None, description="The history to send with the next turn: the kept messages plus this reply.")
    dropped_messages: int = Field(0, description="Oldest messages left out to fit the context.")


class ChatApp(App):
    name = "chat"
    title = "Chat"
    description = "Talk with the model: multi-turn, with an optional system prompt."
    Input = ChatInput
    Output = ChatOutput
    preferences = TechniquePreferences(prefix_cache=True)  # later turns reuse earlier turns' KV

    @staticmethod
    def conversation(input: ChatInput) -> list[dict]:
        """The messages as the model sees them, with `system` replacing any system message."""
        messages = [m.model_dump() for m in input.messages or []]
        if input.system:
            messages = [{"role": "system", "content": input.system}] + \
                [m for m in messages if m["role"] != "system"]
        return messages

    @staticmethod
    def fit(messages: list[dict], budget: int, count_tokens) -> tuple[list[dict], int]:
        """Drop the oldest non-system messages until the rest fit `budget` tokens."""
        kept, dropped = list(messages), 0
        while sum(count_tokens(m["content"]) + 8 for m in kept) > budget:
            oldest = next((i for i, m in enumerate(kept[:-1]) if m["role"] != "system"), None)
            if oldest is None:
                break
            kept.pop(oldest)
            dropped += 1
        return kept, dropped

    def build_request(self, ctx: AppContext, input: ChatInput, messages: list[dict] | None = None) -> GenerationRequest:
        sampling = ctx.sampling(max_tokens=input.max_tokens, temperature=input.temperature,
                                top_p=input.top_p, stop=input.stop, seed=input.seed,
                                logprobs=input.logprobs)
        constraint = input.constraint.to_engine() if input.constraint else None
        if input.prompt is not None:
            return GenerationRequest(prompt=input.prompt, sampling=sampling, constraint=constraint)
        return GenerationRequest(messages=messages or self.conversation(input), sampling=sampling,
                                 constraint=constraint)

    def validate_for_engine(self, input: ChatInput, engine_context_length: int, count_tokens) -> None:
        if input.prompt is not None:
            texts = [input.prompt]
        elif input.overflow == "drop_oldest":  # only the system prompt and the last message must fit
            texts = [m["content"] for m in self.conversation(input) if m["role"] == "system"] + \
                [input.messages[-1].content]
        else:
            texts = [m["content"] for m in self.conversation(input)]
        tokens = sum(count_tokens(t) for t in texts)
        if tokens >= engine_context_length:
            raise AppInputError(f"the conversation is {tokens} tokens; the model's context holds "
                                f"{engine_context_length}. Drop older turns and try again")

    async def run(self, ctx: AppContext, input: ChatInput) -> ChatOutput:
        messages, dropped = None, 0
        if input.messages is not None:
            budget = ctx.engine.context_length - min(input.max_tokens, ctx.engine.context_length // 2)
            messages, dropped = self.conversation(input), 0
            if input.overflow == "drop_oldest":
                messages, dropped = self.fit(messages, budget, ctx.engine.count_tokens)
        final = await ctx.stream(self.build_request(ctx, input, messages))
        history = None
        if messages is not None:
            history = [ChatMessage(**m) for m in messages] + [ChatMessage(role="assistant", content=final.text)]
        return ChatOutput(text=final.text, finish_reason=final.finish_reason,
                          prompt_tokens=final.usage.prompt_tokens, completion_tokens=final.usage.completion_tokens,
                          session_id=input.session_id or uuid.uuid4().hex, messages=history,
                          dropped_messages=dropped)
