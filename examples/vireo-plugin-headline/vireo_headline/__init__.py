"""Headline: a few headline options for a text — the example app of docs/PLUGINS.md.

It shows the whole contract: an `Input` and `Output` schema (the UI builds its form from `Input`),
an input check against the model's context before any work, progress, streamed tokens, the job's
sampling overrides, and cancellation (handled by `ctx.stream`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from vireo.apps.base import App, AppContext, AppInputError
from vireo.inference.api import GenerationRequest


class HeadlineInput(BaseModel):
    text: str = Field(..., min_length=1, max_length=20_000, description="The article or post to title.")
    count: int = Field(3, ge=1, le=5, description="How many headlines to propose.")
    style: Literal["news", "blog", "playful"] = "news"
    max_tokens: int = Field(96, ge=16, le=512)


class HeadlineOutput(BaseModel):
    headlines: list[str] = Field(description="The proposed headlines, best first.")
    text: str = Field(description="The model's answer as written.")


class HeadlineApp(App[HeadlineInput]):
    name = "headline"
    title = "Headline"
    description = "Proposes headlines for a text."
    Input = HeadlineInput
    Output = HeadlineOutput

    def validate_for_engine(self, input: HeadlineInput, engine_context_length: int, count_tokens) -> None:
        needed = count_tokens(input.text) + input.max_tokens + 64
        if needed > engine_context_length:
            raise AppInputError(f"the text needs about {needed} tokens; the model holds {engine_context_length}")

    async def run(self, ctx: AppContext, input: HeadlineInput) -> HeadlineOutput:
        self.validate_for_engine(input, ctx.engine.context_length, ctx.engine.count_tokens)
        ctx.progress(0.0, "writing headlines")
        request = GenerationRequest(
            messages=[
                {
                    "role": "system",
                    "content": f"You write {input.style} headlines. Answer with one headline per line, nothing else.",
                },
                {"role": "user", "content": f"Write {input.count} headlines for:\n\n{input.text}"},
            ],
            sampling=ctx.sampling(temperature=0.0, max_tokens=input.max_tokens),
        )
        final = await ctx.stream(request)  # tokens reach the client as they come; cancel aborts here
        lines = [line.strip(' -*#"0123456789.)').strip() for line in final.text.splitlines()]
        ctx.progress(1.0, "done")
        return HeadlineOutput(headlines=[line for line in lines if line][: input.count], text=final.text)
