"""Chat: multi-turn conversation (or a raw completion prompt), streamed; the OpenAI endpoints use it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from vireo.apps.base import App, AppContext, AppInputError, TechniquePreferences
from vireo.inference.api import GenerationRequest


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatInput(BaseModel):
    messages: list[ChatMessage] | None = Field(None, description="The conversation so far, oldest first.")
    prompt: str | None = Field(None, description="A raw prompt to continue (instead of messages).")
    system: str | None = Field(None, description="A system prompt placed before the messages.")
    max_tokens: int = Field(256, ge=1, le=4096)
    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: list[str] = Field(default_factory=list, max_length=8)
    seed: int | None = None
    logprobs: bool = False

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


class ChatApp(App):
    name = "chat"
    title = "Chat"
    description = "Talk with the model: multi-turn, with an optional system prompt."
    Input = ChatInput
    Output = ChatOutput
    preferences = TechniquePreferences(prefix_cache=True)  # later turns reuse earlier turns' KV

    def build_request(self, ctx: AppContext, input: ChatInput) -> GenerationRequest:
        sampling = ctx.sampling(max_tokens=input.max_tokens, temperature=input.temperature,
                                top_p=input.top_p, stop=input.stop, seed=input.seed,
                                logprobs=input.logprobs)
        if input.prompt is not None:
            return GenerationRequest(prompt=input.prompt, sampling=sampling)
        messages = [m.model_dump() for m in input.messages or []]
        if input.system:
            messages = [{"role": "system", "content": input.system}] + \
                [m for m in messages if m["role"] != "system"]
        return GenerationRequest(messages=messages, sampling=sampling)

    def validate_for_engine(self, input: ChatInput, engine_context_length: int, count_tokens) -> None:
        text = input.prompt if input.prompt is not None else \
            "\n".join(m.content for m in input.messages or []) + (input.system or "")
        tokens = count_tokens(text)
        if tokens >= engine_context_length:
            raise AppInputError(f"the conversation is {tokens} tokens; the model's context holds "
                                f"{engine_context_length}. Drop older turns and try again")

    async def run(self, ctx: AppContext, input: ChatInput) -> ChatOutput:
        final = await ctx.stream(self.build_request(ctx, input))
        return ChatOutput(text=final.text, finish_reason=final.finish_reason,
                          prompt_tokens=final.usage.prompt_tokens,
                          completion_tokens=final.usage.completion_tokens)
