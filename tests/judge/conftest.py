"""One SmolLM2 engine (hf backend) for the judge tests."""

from __future__ import annotations

import pytest_asyncio

from vireo.inference.factory import create_engine
from vireo.inference.local import EngineConfig


@pytest_asyncio.fixture(scope="session")
async def judge_engine():
    engine = create_engine("hf", EngineConfig(model="smollm2-135m"))
    await engine.start()
    yield engine
    await engine.shutdown()
