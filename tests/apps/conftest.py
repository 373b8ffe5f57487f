"""Shared fixtures for the text apps: one SmolLM2 engine (hf backend) loaded once per session."""

from __future__ import annotations

import pytest

from vireo.apps.base import LocalContext


@pytest.fixture(scope="session")
def text_engine(hf_engine):
    return hf_engine


@pytest.fixture
def run_app(text_engine):
    """`await run_app(app, input_dict, **options)` -> (output, context) through a LocalContext."""

    async def run(app, input_dict: dict, **options):
        ctx = LocalContext(engine=text_engine, app_name=app.name, options=options, preferences=app.preferences)
        job_input = app.Input(**input_dict)
        app.validate_for_engine(job_input, text_engine.context_length, text_engine.count_tokens)
        return await app.run(ctx, job_input), ctx

    return run
