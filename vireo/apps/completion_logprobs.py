"""A reply's tokens with their log-probabilities, in OpenAI's (legacy) completion `logprobs` shape.

Scored after the reply is written, not while sampling: one teacher-forced forward pass over prompt +
reply (`Engine.sequence_logprobs`) gives each token its raw log-probability (the model's own
distribution, before temperature, top-p or a grammar shaped the sampling) and the most likely tokens
at its position. The same pass scores an echoed prompt, whose first token has no log-probability
(nothing precedes it). `text_offset` counts where each token starts in the choice's text as the sum of
the lengths of the tokens before it, as vLLM's replies do.
"""

from __future__ import annotations

from itertools import accumulate

from pydantic import BaseModel, Field

from vireo.inference.api import Engine

MAX_TOP_LOGPROBS = 20  # alternatives per position, at most (vLLM's default limit; OpenAI's is 5)


class CompletionLogprobs(BaseModel):
    """Per token of a choice (the prompt's first when echoed): its text, log-probability, likeliest
    alternatives (text → log-probability) and where it starts in the choice's text."""

    tokens: list[str]
    token_logprobs: list[float | None] = Field(..., description="None for an echoed prompt's first token.")
    top_logprobs: list[dict[str, float] | None] = Field(
        ..., description="The most likely tokens at each position; None for an echoed prompt's first token."
    )
    text_offset: list[int]


async def completion_logprobs(
    engine: Engine, prompt_ids: list[int], completion_ids: list[int], top: int, echo: bool
) -> CompletionLogprobs:
    """The log-probabilities of `completion_ids` after `prompt_ids` (and of the prompt's own tokens
    too when `echo`), with the `top` most likely tokens at each position."""
    scored = await engine.sequence_logprobs(prompt_ids + completion_ids, top, start=0 if echo else len(prompt_ids))
    tokens = [t.text for t in scored]
    return CompletionLogprobs(
        tokens=tokens,
        token_logprobs=[t.logprob for t in scored],
        top_logprobs=[None if t.logprob is None else {a.text: a.logprob for a in t.top} for t in scored],
        text_offset=list(accumulate((len(t) for t in tokens), initial=0))[: len(tokens)],
    )
