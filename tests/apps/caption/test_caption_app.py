"""Captions from facts: the right objects are found and the caption names nothing else."""

from __future__ import annotations

import base64

import httpx
import pytest
from openai import AsyncOpenAI

from vireo.apps.base import AppInputError, LocalContext
from vireo.apps.caption import CaptionApp, caption_image_bytes
from vireo.apps.caption.facts import extract_facts
from vireo.apps.caption.images import load_image
from vireo.apps.caption.vlm import caption_with_vlm
from vireo.apps.caption.vocabulary import invented_objects, mentioned_objects


def test_chelsea_facts_contain_a_cat(vision, photo):
    facts = extract_facts(load_image(photo("chelsea")), vision)
    assert "cat" in [o.label for o in facts.objects]
    assert "cat" in facts.scene.label.lower()


def test_page_text_is_read(vision, photo):
    facts = extract_facts(load_image(photo("page")), vision)
    assert any("segmentation" in line.lower() for line in facts.text)


async def test_coffee_caption_finds_a_cup_and_invents_nothing(caption_engine, vision, photo):
    app = CaptionApp()
    ctx = LocalContext(caption_engine)
    image = base64.b64encode(photo("coffee")).decode()
    out = await caption_image_bytes(caption_engine, base64.b64decode(image), ctx=ctx, models=vision)
    assert "cup" in [o.label for o in out.objects]
    assert invented_objects(out.caption, out.facts) == []
    assert out.path in ("llm_from_facts", "template_fallback")
    assert "cup" in out.tags and out.alt_text.startswith(out.caption)
    assert app.Output.model_validate(out.model_dump())


async def test_caption_app_streams_the_final_caption(caption_engine, photo):
    app = CaptionApp()
    ctx = LocalContext(caption_engine)
    out = await app.run(ctx, app.Input(image_base64=base64.b64encode(photo("chelsea")).decode()))
    assert "cat" in out.tags and "".join(ctx.emitted) == out.caption
    assert invented_objects(out.caption, out.facts) == []
    if out.path == "template_fallback":  # the LLM's wording was caught inventing something
        assert out.invented_objects and mentioned_objects(out.rejected_caption or "")


def test_check_catches_an_invented_object(vision, photo):
    facts = extract_facts(load_image(photo("chelsea")), vision, read_text=False)
    assert invented_objects("A cat sleeping next to a laptop and a dog.", facts) == ["dog", "laptop"]
    assert invented_objects("An Egyptian cat resting.", facts) == []


async def test_app_rejects_a_non_image_with_a_clear_message(caption_engine):
    app = CaptionApp()
    bad = app.Input(image_base64=base64.b64encode(b"hello, not an image").decode())
    with pytest.raises(AppInputError, match="not an image"):
        await app.run(LocalContext(caption_engine), bad)


async def test_vlm_request_uses_openai_image_content_parts(photo):
    """The VLM path's request, captured by a stand-in OpenAI-compatible server."""
    seen = {}

    def server(request: httpx.Request) -> httpx.Response:
        import json
        seen.update(json.loads(request.content))
        return httpx.Response(200, json={
            "id": "x", "object": "chat.completion", "created": 0, "model": seen["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "A cat on a blanket."}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16}})

    client = AsyncOpenAI(base_url="http://vlm.test/v1", api_key="k",
                         http_client=httpx.AsyncClient(transport=httpx.MockTransport(server)))
    text, usage = await caption_with_vlm(client, "some-vlm", load_image(photo("chelsea")), "Caption this.")
    parts = seen["messages"][0]["content"]
    assert text == "A cat on a blanket." and usage["completion_tokens"] == 6
    assert parts[0] == {"type": "text", "text": "Caption this."}
    assert parts[1]["type"] == "image_url" and parts[1]["image_url"]["url"].startswith("data:image/png;base64,")


async def test_vision_model_on_a_local_backend_is_refused(caption_engine, photo):
    with pytest.raises(AppInputError, match="openai backend"):
        await caption_image_bytes(caption_engine, photo("chelsea"), vision_model="some-vlm")
