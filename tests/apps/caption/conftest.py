"""Shared fixtures: one SmolLM2 engine (hf backend) and the vision models, loaded once."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from vireo.apps.caption.facts import VisionModels


def photo_png(name: str) -> bytes:
    """One of scikit-image's bundled photos as PNG bytes."""
    from skimage import data

    pixels = getattr(data, name)()
    if name == "stereo_motorcycle":
        pixels = pixels[0]
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def caption_engine(hf_engine):
    return hf_engine


@pytest.fixture(scope="session")
def vision() -> VisionModels:
    return VisionModels()


@pytest.fixture(scope="session")
def photo():
    """`photo(name)` -> PNG bytes of a bundled scikit-image photo."""
    return photo_png
