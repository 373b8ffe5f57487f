"""The vision-language path: send the picture to an OpenAI-compatible server in content parts."""

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


def vlm_messages(data_url: str, instruction: str) -> list[dict]:
    """One user turn with a text part and an image part (OpenAI chat content-parts format)."""
    return [{"role": "user", "content": [
        {"type": "text", "text": instruction},
        {"type": "image_url", "image_url": {"url": data_url}},
    ]}]


async def caption_with_vlm(client, model: str, image: Image.Image, instruction: str,
                           max_tokens: int = 80) -> tuple[str, dict]:
    """The model's caption and token usage; `client` is an `openai.AsyncOpenAI`."""
    response = await client.chat.completions.create(
        model=model, messages=vlm_messages(png_data_url(image), instruction),
        max_tokens=max_tokens, temperature=0.0)
    text = (response.choices[0].message.content or "").strip()
    usage = response.usage
    return text, {"prompt_tokens": getattr(usage, "prompt_tokens", 0) or 0,
                  "completion_tokens": getattr(usage, "completion_tokens", 0) or 0}


def openai_client_for(engine):
    """An AsyncOpenAI client for the engine's server, or None if the engine has no OpenAI endpoint."""
    config = getattr(engine, "config", None)
    base_url = getattr(config, "openai_base_url", None)
    if engine.backend not in ("openai", "vllm") or not base_url:
        return None
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=base_url, api_key=getattr(config, "openai_api_key", None) or "none")
