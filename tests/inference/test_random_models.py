"""`random:<shape>` models: a real shape served with seeded random weights made at load (no weight files)."""

from __future__ import annotations

import pytest

from vireo.inference.api import GenerationRequest, SamplingParams
from vireo.inference.engine_config import EngineConfig
from vireo.inference.factory import create_engine
from vireo.inference.random_models import MARKER
from vireo.inference.registry import ModelRegistry


def test_the_registry_writes_a_folder_without_weights(tmp_path):
    resolved = ModelRegistry(tmp_path).resolve("random:tiny")
    assert resolved.source == "random" and (resolved.path / MARKER).exists()
    assert (resolved.path / "config.json").exists() and (resolved.path / "tokenizer.json").exists()
    assert not list(resolved.path.glob("*.safetensors"))
    assert ModelRegistry(tmp_path).model_id("random:tiny") == "random:tiny"
    with pytest.raises(ValueError, match="no random model shape 'huge'"):
        ModelRegistry(tmp_path).resolve("random:huge")


async def test_every_engine_of_the_name_runs_the_same_weights_to_the_budget(tmp_path):
    """Two engines (as a worker and a benchmark's engine alone would be) make identical weights; with no
    end-of-sequence token, generation always runs to max_tokens."""
    texts = []
    for _ in range(2):
        engine = create_engine(EngineConfig(backend="native", model="random:tiny", home=tmp_path))
        await engine.start()
        try:
            request = GenerationRequest(prompt="t5 t6 t7 t8 t9", sampling=SamplingParams(max_tokens=16))
            final = await engine.complete(request)
        finally:
            await engine.shutdown()
        assert final.finish_reason == "length" and final.usage.completion_tokens == 16
        texts.append(final.text)
    assert texts[0] == texts[1] and texts[0].strip()
