"""Summarize: text of any length in, a summary in the chosen style and length out.

Text that fits one chunk is summarized in one pass. Longer text is map-reduced: each chunk is
summarized on its own (a few at a time), the partial summaries are combined, and if those are
still too long for one chunk they are summarized again, up to a few rounds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from vireo.apps.base import App, AppContext, AppInputError, TechniquePreferences
from vireo.apps.ordered import map_in_order
from vireo.apps.summary_prompts import clean_summary, final_messages, map_messages, max_new_tokens
from vireo.apps.textsplit import chunk_text
from vireo.inference.api import GenerationRequest

LENGTH_WORDS = {"short": 40, "medium": 100, "long": 200}
CHUNK_TOKENS = 1536  # small models summarize a page far better than a chapter
MAX_CHUNKS = 64
MAX_ROUNDS = 4
PROMPT_OVERHEAD = 160  # system + instructions around the text
IN_FLIGHT = 4


class SummarizeInput(BaseModel):
    text: str = Field(..., min_length=1, max_length=200_000, description="The text to summarize.")
    length: Literal["short", "medium", "long"] = Field("medium", description="Target summary length.")
    style: Literal["paragraph", "bullets", "tldr"] = Field("paragraph", description="Shape of the summary.")
    target_words: int | None = Field(None, ge=10, le=1000, description="Overrides `length` with a word count.")
    focus: str | None = Field(None, max_length=300, description="What the summary should concentrate on.")
    chunk_tokens: int | None = Field(
        None, ge=128, le=8192, description="Chunk size for long texts (default: 1536 or what fits)."
    )

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text is empty: give the text to summarize")
        return text

    def words(self) -> int:
        words = self.target_words or LENGTH_WORDS[self.length]
        return min(words, 40) if self.style == "tldr" else words


class SummarizeOutput(BaseModel):
    summary: str
    style: str = "paragraph"
    input_tokens: int
    summary_tokens: int
    chunks: int = Field(1, description="Pieces the text was cut into (1 = single pass).")
    rounds: int = Field(1, description="Summarization rounds (more than 1 = map-reduce).")


class SummarizeApp(App[SummarizeInput]):
    name = "summarize"
    title = "Summarize"
    description = (
        "Condense a text of any length into a faithful summary: a paragraph, bullets or a TL;DR, of the chosen length."
    )
    Input = SummarizeInput
    Output = SummarizeOutput
    preferences = TechniquePreferences(speculation="prompt_lookup")  # summaries copy from the input

    @staticmethod
    def chunk_budget(input: SummarizeInput, context_length: int) -> int:
        room = context_length - PROMPT_OVERHEAD - max_new_tokens(input.words(), input.style)
        return min(input.chunk_tokens or CHUNK_TOKENS, room)

    def validate_for_engine(self, input: SummarizeInput, engine_context_length: int, count_tokens) -> None:
        budget = self.chunk_budget(input, engine_context_length)
        if budget < 128:
            raise AppInputError(
                f"this model's context ({engine_context_length} tokens) is too small for a "
                f"{input.words()}-word summary; ask for a shorter one"
            )
        tokens = count_tokens(input.text)
        if tokens > budget * MAX_CHUNKS:
            raise AppInputError(
                f"text is {tokens} tokens; at most {budget * MAX_CHUNKS} tokens "
                f"({MAX_CHUNKS} chunks of {budget}) can be summarized in one job"
            )

    async def run(self, ctx: AppContext, input: SummarizeInput) -> SummarizeOutput:
        self.validate_for_engine(input, ctx.engine.context_length, ctx.engine.count_tokens)
        count = ctx.engine.count_tokens
        budget = self.chunk_budget(input, ctx.engine.context_length)
        text, chunks, rounds = input.text.strip(), 1, 1
        while count(text) > budget:
            if rounds > MAX_ROUNDS:
                raise AppInputError(
                    "the partial summaries did not shrink enough to combine; "
                    "ask for a shorter summary or split the text"
                )
            pieces = chunk_text(text, budget, count)
            chunks = max(chunks, len(pieces))
            text = await self._map(ctx, input, pieces, rounds)
            rounds += 1
        ctx.check_cancelled()
        ctx.progress(0.9 if rounds > 1 else 0.0, "writing the summary")
        final = await ctx.stream(
            self._request(
                ctx, final_messages(text, input, combined=rounds > 1), max_new_tokens(input.words(), input.style)
            )
        )
        ctx.progress(1.0, "done")
        return SummarizeOutput(
            summary=clean_summary(final.text, input.style),
            style=input.style,
            input_tokens=count(input.text),
            summary_tokens=final.usage.completion_tokens,
            chunks=chunks,
            rounds=rounds,
        )

    async def _map(self, ctx: AppContext, input: SummarizeInput, pieces: list[str], round_: int) -> str:
        """Summarize every piece (a few in flight), reporting progress; returns them joined."""
        words = max(40, min(120, input.words()))
        start = 0.85 * (1 - 0.5 ** (round_ - 1))  # each round gets half the bar the one before got
        span = 0.85 * 0.5**round_

        async def summarize_piece(indexed: tuple[int, str]) -> str:
            ctx.check_cancelled()
            index, piece = indexed
            messages = map_messages(piece, index, len(pieces), words, input.focus)
            final = await ctx.stream(self._request(ctx, messages, max_new_tokens(words, "paragraph")), emit=False)
            return clean_summary(final.text, "paragraph")

        def report(index: int, _summary: str) -> None:
            ctx.progress(
                start + span * (index + 1) / len(pieces),
                f"round {round_}: summarized part {index + 1} of {len(pieces)}",
            )

        partials = await map_in_order(list(enumerate(pieces)), summarize_piece, IN_FLIGHT, report)
        return "\n\n".join(p for p in partials if p)

    @staticmethod
    def _request(ctx: AppContext, messages: list[dict], max_tokens: int) -> GenerationRequest:
        return GenerationRequest(messages=messages, sampling=ctx.sampling(max_tokens=max_tokens, temperature=0.0))
