"""The vision-language path's picture: a PNG `data:` URL for `GenerationRequest.images` (the openai
backend sends it as an image part; app.py builds the request)."""

from __future__ import annotations

import base64
import io

from PIL import Image

MAX_VLM_SIDE = 1024  # servers resize anyway; a smaller upload keeps requests fast


def png_data_url(image: Image.Image) -> str:
    """The (already sanitised, upright) image as a PNG `data:` URL, at most MAX_VLM_SIDE a side."""
    image = image.copy()
    image.thumbnail((MAX_VLM_SIDE, MAX_VLM_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
