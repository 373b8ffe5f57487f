"""Summarize: long text is map-reduced with progress; styles shape the output; limits are clear."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from vireo.apps.base import AppInputError, JobCancelled, LocalContext
from vireo.apps.summarize import SummarizeApp
from vireo.apps.summary_prompts import clean_summary

APP = SummarizeApp()
PARAGRAPHS = [
    "The city council voted on Tuesday to keep the central library open on Sundays for two more years. "
    "More than three thousand residents had signed a petition asking for the Sunday hours to stay.",
    "The extra cost of about 120,000 dollars a year will be taken from the parks maintenance fund. "
    "Council member Ana Reyes said students and working families use the library most on Sundays.",
    "The library director thanked the residents and said Sunday visits grew by a quarter last year. "
    "A new reading room for teenagers will open on the second floor in the autumn.",
]


async def test_long_text_is_map_reduced_with_progress_events(run_app):
    out, ctx = await run_app(APP, {"text": "\n\n".join(PARAGRAPHS * 2), "chunk_tokens": 128}, max_tokens=16)
    assert out.chunks >= 2 and out.rounds >= 2
    assert out.summary.strip()
    fractions = [f for f, _ in ctx.progress_log]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("summarized part 1 of" in message for _, message in ctx.progress_log)


def test_bullet_summaries_are_normalised_to_dash_lines():
    assert (
        clean_summary("Summary:\n* first point\n2) second point\nKey facts:", "bullets")
        == "- first point\n- second point"
    )


def test_a_blank_text_is_rejected():
    with pytest.raises(ValidationError, match="text is empty"):
        SummarizeApp.Input(text="  \n ")


def test_text_beyond_the_chunk_limit_is_refused_before_any_work(text_engine):
    job = SummarizeApp.Input(text="word " * 40_000, chunk_tokens=128)
    with pytest.raises(AppInputError, match="can be summarized in one job"):
        APP.validate_for_engine(job, text_engine.context_length, text_engine.count_tokens)


async def test_a_cancelled_job_stops_before_the_next_chunk(text_engine):
    cancel = asyncio.Event()
    cancel.set()
    ctx = LocalContext(engine=text_engine, app_name="summarize", cancel_event=cancel)
    with pytest.raises(JobCancelled):
        await APP.run(ctx, SummarizeApp.Input(text="\n\n".join(PARAGRAPHS * 2), chunk_tokens=128))
    assert ctx.usage["completion_tokens"] == 0
