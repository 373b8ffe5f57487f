"""The native engine's greedy output equals the HF reference backend's, token for token."""

import pytest

from vireo.inference.api import GenerationRequest, SamplingParams

from .conftest import PROMPTS


@pytest.mark.parametrize("prompt", PROMPTS)
async def test_greedy_matches_hf(native, hf, prompt):
    def request():
        return GenerationRequest(prompt=prompt, sampling=SamplingParams(max_tokens=20), speculation="off")

    ours, reference = await native.complete(request()), await hf.complete(request())
    assert ours.text == reference.text
    assert ours.usage.completion_tokens == reference.usage.completion_tokens
