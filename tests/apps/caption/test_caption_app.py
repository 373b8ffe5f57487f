"""Captions from facts: the right objects are found and the caption names nothing else."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from openai import AsyncOpenAI

from vireo.apps.base import AppInputError, LocalContext
from vireo.apps.caption import CaptionApp, caption_image_bytes
from vireo.apps.caption.facts import extract_facts
from vireo.apps.caption.images import load_image
from vireo.apps.caption.vocabulary import invented_objects, mentioned_objects
from vireo.inference.backends.openai import OpenAIEngine
from vireo.inference.engine_config import EngineConfig


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


async def test_the_vlm_path_sends_the_picture_as_an_image_part_of_the_engine_request(photo):
    """The VLM path through the openai backend, captured by a stand-in OpenAI-compatible server: the
    picture is an image part of the last user message, for the vision model named in the input."""
    seen = {}

    def server(request: httpx.Request) -> httpx.Response:
        seen.update(json.loads(request.content))
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": seen["model"]}
        events = [
            {
                **chunk,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": "A cat on a blanket."},
                        "finish_reason": None,
                    }
                ],
            },
            {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {**chunk, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16}},
        ]
        body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    engine = OpenAIEngine(
        EngineConfig(
            backend="openai", openai_base_url="http://vlm.test/v1", openai_model="a-text-model", max_model_len=8192
        )
    )
    engine._client = AsyncOpenAI(
        base_url="http://vlm.test/v1",
        api_key="k",
        max_retries=0,  # no model card read
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(server)),
    )
    out = await caption_image_bytes(engine, photo("chelsea"), vision_model="some-vlm")
    parts = seen["messages"][-1]["content"]
    assert seen["model"] == "some-vlm"
    assert out.path == "vlm" and out.caption == "A cat on a blanket." and out.usage["completion_tokens"] == 6
    assert parts[0]["type"] == "text" and parts[0]["text"]
    assert parts[1]["type"] == "image_url" and parts[1]["image_url"]["url"].startswith("data:image/png;base64,")


async def test_vision_model_on_a_local_backend_is_refused(caption_engine, photo):
    with pytest.raises(AppInputError, match="openai backend"):
        await caption_image_bytes(caption_engine, photo("chelsea"), vision_model="some-vlm")
