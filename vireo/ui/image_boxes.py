"""The picture with what was detected in it: a box and a label per object, drawn with PIL (no Streamlit)."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont, ImageOps

PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#0a9396", "#f032e6", "#9a6324")


def load_picture(data: bytes) -> Image.Image:
    """The image upright (as the camera held it: EXIF orientation applied) in RGB."""
    image = Image.open(io.BytesIO(data))
    return ImageOps.exif_transpose(image).convert("RGB")


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # an old Pillow: one bitmap size
        return ImageFont.load_default()


def draw_boxes(image: Image.Image, objects: list[dict]) -> Image.Image:
    """A copy of `image` with each object's boxes outlined and labelled (label and confidence), one colour
    per label. `objects` are the caption app's: {label, confidence, boxes: [[x0, y0, x1, y1], …]}."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    side = max(out.size)
    width = max(2, side // 250)
    font = _font(max(12, side // 45))
    for number, obj in enumerate(objects):
        colour = PALETTE[number % len(PALETTE)]
        text = f"{obj.get('label', '?')} {float(obj.get('confidence', 0)):.0%}"
        for box in obj.get("boxes") or []:
            x0, y0, x1, y1 = (int(v) for v in box)
            draw.rectangle((x0, y0, x1, y1), outline=colour, width=width)
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            pad = width
            label_h = bottom - top + 2 * pad
            ty = y0 - label_h if y0 - label_h >= 0 else y0  # above the box, or inside it at the top edge
            draw.rectangle((x0, ty, x0 + right - left + 2 * pad, ty + label_h), fill=colour)
            draw.text((x0 + pad - left, ty + pad - top), text, fill="white", font=font)
    return out
