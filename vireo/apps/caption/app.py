"""Caption: describe an image. Offline, small vision models find facts and the LLM words them;
with a vision-language model behind an OpenAI-compatible server, the model sees the image."""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import BaseModel, Field

from vireo.apps.base import App, AppContext, AppInputError, TechniquePreferences
from vireo.apps.caption import compose
from vireo.apps.caption.facts import ImageFacts, ObjectFact, VisionModels, extract_facts
from vireo.apps.caption.images import MAX_IMAGE_BYTES, decode_base64_image, load_image
from vireo.apps.caption.vlm import png_data_url
from vireo.apps.caption.vocabulary import invented_objects
from vireo.inference.api import Engine, GenerationRequest, SamplingParams

CaptionPath = Literal["llm_from_facts", "template_fallback", "template", "vlm"]
VLM_INSTRUCTION = "Write one short, factual caption for this image."


class CaptionInput(BaseModel):
    image_base64: str = Field(
        ...,
        min_length=1,
        max_length=MAX_IMAGE_BYTES * 4 // 3 + 64,
        description="The image file, base64 (or a data:image/...;base64, URL).",
    )
    style: str | None = Field(None, max_length=200, description="Optional tone, e.g. 'for a news site'.")
    vision_model: str | None = Field(
        None,
        max_length=200,
        description="A vision-language model served by the openai/vllm backend; "
        "when set, the model sees the image itself.",
    )
    use_llm: bool = Field(True, description="Let the LLM word the facts (else a template caption).")
    read_text: bool = Field(True, description="Run OCR for visible text.")
    max_tokens: int = Field(60, ge=8, le=300)


class CaptionOutput(BaseModel):
    caption: str
    alt_text: str
    tags: list[str]
    objects: list[ObjectFact]
    text_found: list[str]
    facts: ImageFacts | None
    path: CaptionPath = Field(description="What produced the caption.")
    invented_objects: list[str] = Field(
        default_factory=list,
        description="Object words the LLM used that the facts lack (its caption was then replaced by the template).",
    )
    rejected_caption: str | None = None
    usage: dict[str, int] = Field(default_factory=dict)


async def caption_image_bytes(
    engine: Engine,
    data: bytes,
    *,
    style: str | None = None,
    vision_model: str | None = None,
    use_llm: bool = True,
    read_text: bool = True,
    max_tokens: int = 60,
    ctx: AppContext | None = None,
    models: VisionModels | None = None,
) -> CaptionOutput:
    """Caption raw image bytes (for the app and for image parts sent to /v1/chat/completions)."""
    image = load_image(data)
    if vision_model:
        return await _caption_by_vlm(engine, image, vision_model, max_tokens, ctx)
    facts = await asyncio.to_thread(extract_facts, image, models, read_text)
    if ctx is not None:
        ctx.progress(0.5, "facts found; writing the caption")
    if not use_llm:
        return _output(compose.template_caption(facts), facts, "template")
    request = GenerationRequest(
        messages=compose.caption_messages(facts, style), sampling=_sampling(ctx, max_tokens), app="caption"
    )
    final = await (ctx.stream(request, emit=False) if ctx else engine.complete(request))
    usage = {"prompt_tokens": final.usage.prompt_tokens, "completion_tokens": final.usage.completion_tokens}
    written = compose.clean_caption(final.text)
    invented = invented_objects(written, facts)
    if invented or len(written) < 8:
        out = _output(compose.template_caption(facts), facts, "template_fallback", usage)
        out.invented_objects, out.rejected_caption = invented, written
        return out
    return _output(written, facts, "llm_from_facts", usage)


def _sampling(ctx: AppContext | None, max_tokens: int) -> SamplingParams:
    if ctx:
        return ctx.sampling(max_tokens=max_tokens, temperature=0.0, stop=["\n"])
    return SamplingParams(max_tokens=max_tokens, temperature=0.0, stop=["\n"])


def _output(caption: str, facts: ImageFacts, path: CaptionPath, usage: dict | None = None) -> CaptionOutput:
    return CaptionOutput(
        caption=caption,
        alt_text=compose.alt_text(caption, facts),
        tags=compose.tags(facts),
        objects=facts.objects,
        text_found=facts.text,
        facts=facts,
        path=path,
        usage=usage or {},
    )


async def _caption_by_vlm(engine: Engine, image, model: str, max_tokens: int, ctx: AppContext | None) -> CaptionOutput:
    """The vision-language model sees the picture itself: an image part of the engine request, for
    `model` on the engine's server (the openai backend; a local engine refuses images)."""
    if not engine.accepts_images:
        raise AppInputError(
            f"vision_model {model!r} needs the openai backend (a vision-language model on an "
            f"OpenAI-compatible server, such as vLLM's); this worker runs the {engine.backend!r} "
            "backend. Leave vision_model empty to caption with the built-in vision models"
        )
    request = GenerationRequest(
        messages=[{"role": "user", "content": VLM_INSTRUCTION}],
        images=[png_data_url(image)],
        model=model,
        app="caption",
        sampling=SamplingParams(max_tokens=max_tokens, temperature=0.0),
    )
    final = await (ctx.stream(request, emit=False) if ctx else engine.complete(request))
    if final.finish_reason == "error":
        raise AppInputError(f"the vision-language model {model!r} failed: {final.error}")
    text = final.text.strip()
    usage = {"prompt_tokens": final.usage.prompt_tokens, "completion_tokens": final.usage.completion_tokens}
    return CaptionOutput(
        caption=text, alt_text=text, tags=[], objects=[], text_found=[], facts=None, path="vlm", usage=usage
    )


class CaptionApp(App[CaptionInput]):
    name = "caption"
    title = "Image caption"
    description = (
        "Caption an image: objects, scene and visible text are found by small vision models "
        "and worded by the LLM, which may not add anything else."
    )
    Input = CaptionInput
    Output = CaptionOutput
    preferences = TechniquePreferences()

    def validate_for_engine(self, input: CaptionInput, engine_context_length: int, count_tokens) -> None:
        decode_base64_image(input.image_base64)  # raises a clear AppInputError at submit time

    async def run(self, ctx: AppContext, input: CaptionInput) -> CaptionOutput:
        ctx.progress(0.0, "reading the image")
        data = decode_base64_image(input.image_base64)
        out = await caption_image_bytes(
            ctx.engine,
            data,
            style=input.style,
            vision_model=input.vision_model,
            use_llm=input.use_llm,
            read_text=input.read_text,
            max_tokens=input.max_tokens,
            ctx=ctx,
        )
        ctx.emit(out.caption)
        ctx.progress(1.0, "done")
        return out
