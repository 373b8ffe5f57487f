"""Shared fixtures: one SmolLM2 (float32) loaded once, engines built around it."""

from __future__ import annotations

import pytest

from vireo.inference.local import EngineConfig
from vireo.inference.native.models.llama import LlamaModel
from vireo.inference.registry import ModelRegistry

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village,",
    "List three primary colors:",
    "Translate to French: Good morning, my friend.",
    "Q: What is 12 times 7?\nA:",
    "import numpy as np\n\n# compute the mean of a list\n",
    "The three laws of thermodynamics are",
    "Write a haiku about the sea.",
    "SELECT name FROM users WHERE",
]


@pytest.fixture(scope="session")
def model_path():
    return ModelRegistry().resolve("smollm2-135m").path


@pytest.fixture(scope="session")
def shared_model(model_path):
    return LlamaModel.from_pretrained(model_path)


def make_engine(model_path, model, **settings):
    from vireo.inference.native.engine import NativeEngine

    return NativeEngine(EngineConfig(**settings), model_path, "smollm2-135m", model=model)


@pytest.fixture(scope="session")
async def native(model_path, shared_model):
    engine = make_engine(model_path, shared_model, kv_cache_tokens=16384, speculation="prompt_lookup")
    yield engine
    await engine.shutdown()


@pytest.fixture(scope="session")
async def hf(model_path):
    from vireo.inference.backends.hf import HFEngine

    engine = HFEngine(EngineConfig(), model_path, "smollm2-135m")
    yield engine
    await engine.shutdown()


@pytest.fixture
def engine_factory(model_path, shared_model):
    """Build extra engines (small caches, other settings) over the shared weights."""
    made = []

    def build(**settings):
        made.append(make_engine(model_path, shared_model, **settings))
        return made[-1]

    yield build
    for engine in made:
        engine.loop.stop()
