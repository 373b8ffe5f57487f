"""Detected objects drawn on the picture: the box's edge in its colour, the label on a filled tab."""

from __future__ import annotations

import io

from PIL import Image

from vireo.apps.caption.facts import ObjectFact
from vireo.ui.image_boxes import PALETTE, draw_boxes, load_picture


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def test_each_object_gets_a_box_and_a_label_in_its_own_colour():
    image = Image.new("RGB", (400, 300), "white")
    objects = [
        ObjectFact(label="cat", count=1, confidence=0.87, boxes=[(100, 120, 300, 280)]).model_dump(),
        ObjectFact(label="cup", count=2, confidence=0.5, boxes=[(10, 0, 60, 50), (320, 200, 390, 290)]).model_dump(),
    ]
    out = draw_boxes(image, objects)
    assert out.size == image.size and image.getpixel((100, 200)) == (255, 255, 255)  # the original is kept
    assert out.getpixel((100, 200)) == rgb(PALETTE[0])  # the cat's left edge
    assert out.getpixel((200, 280)) == rgb(PALETTE[0])  # its bottom edge
    assert out.getpixel((200, 200)) == (255, 255, 255)  # inside the box: the picture
    assert out.getpixel((101, 110)) == rgb(PALETTE[0])  # the label's tab, above the box
    assert out.getpixel((320, 250)) == rgb(PALETTE[1]) and out.getpixel((10, 25)) == rgb(PALETTE[1])
    assert out.getpixel((11, 2)) == rgb(PALETTE[1])  # a box at the top edge: its label inside it


def test_a_picture_is_read_upright_as_rgb():
    buffer = io.BytesIO()
    Image.new("L", (30, 20), 128).save(buffer, format="PNG")
    picture = load_picture(buffer.getvalue())
    assert picture.mode == "RGB" and picture.size == (30, 20)
