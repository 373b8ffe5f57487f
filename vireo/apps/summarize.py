"""Summarize: text in, summary out, with a length option."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from vireo.apps.base import App, AppContext, AppInputError, TechniquePreferences
from vireo.inference.api import GenerationRequest

LENGTH_WORDS = {"short": 40, "medium": 100, "long": 200}


class SummarizeInput(BaseModel):
    text: str = Field(..., min_length=1, max_length=200_000, description="The text to summarize.")
    length: Literal["short", "medium", "long"] = Field("medium", description="Target summary length.")


class SummarizeOutput(BaseModel):
    summary: str
    input_tokens: int
    summary_tokens: int


class SummarizeApp(App):
    name = "summarize"
    title = "Summarize"
    description = "Condense a text into a faithful summary of the chosen length."
    Input = SummarizeInput
    Output = SummarizeOutput
    preferences = TechniquePreferences(speculation="prompt_lookup")  # summaries copy from the input

    def validate_for_engine(self, input: SummarizeInput, engine_context_length: int, count_tokens) -> None:
        if not input.text.strip():
            raise AppInputError("text is empty: give the text to summarize")
        tokens = count_tokens(input.text)
        room = engine_context_length - 2 * LENGTH_WORDS[input.length] - 128
        if tokens > room:
            raise AppInputError(f"text is {tokens} tokens; this model can summarize at most {room} "
                                "tokens at once")

    def _request(self, ctx: AppContext, input: SummarizeInput) -> GenerationRequest:
        words = LENGTH_WORDS[input.length]
        messages = [
            {"role": "system", "content": "You summarize texts faithfully. Use only facts from the text."},
            {"role": "user", "content": f"Summarize the following text in at most {words} words.\n\n"
                                        f"Text:\n{input.text.strip()}\n\nSummary:"},
        ]
        return GenerationRequest(messages=messages,
                                 sampling=ctx.sampling(max_tokens=int(words * 1.6) + 16, temperature=0.0))

    async def run(self, ctx: AppContext, input: SummarizeInput) -> SummarizeOutput:
        ctx.progress(0.0, "summarizing")
        final = await ctx.stream(self._request(ctx, input))
        ctx.progress(1.0, "done")
        return SummarizeOutput(summary=final.text.strip(), input_tokens=ctx.engine.count_tokens(input.text),
                               summary_tokens=final.usage.completion_tokens)
