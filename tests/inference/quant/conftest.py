"""Shared, expensive fixtures of the quantizer tests: the packaged SmolLM2 and its tokenizer."""

import pytest
import torch


@pytest.fixture(scope="session")
def smollm2_path():
    from vireo.inference.registry import ModelRegistry

    return ModelRegistry().resolve("smollm2-135m").path


@pytest.fixture(scope="session")
def tokenizer(smollm2_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_path)


@pytest.fixture
def fp32_model(smollm2_path):
    """A fresh float32 SmolLM2 (tests quantize it in place)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(smollm2_path, dtype=torch.float32).eval()
