"""Image captioning: facts from small vision models, worded by the LLM (or a VLM when one is served)."""

from vireo.apps.caption.app import CaptionApp, CaptionInput, CaptionOutput, caption_image_bytes

__all__ = ["CaptionApp", "CaptionInput", "CaptionOutput", "caption_image_bytes"]
