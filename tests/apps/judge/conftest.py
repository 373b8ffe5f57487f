"""One SmolLM2 engine (hf backend) for the judge tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def judge_engine(hf_engine):
    return hf_engine
