"""Untrusted image input: formats, limits, decompression bombs, EXIF orientation."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
from PIL import Image

from vireo.apps.base import AppInputError
from vireo.apps.caption.images import decode_base64_image, load_image


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (the classic decompression bomb shape)."""
    buffer = io.BytesIO()
    Image.new("L", (16, 16)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(data)


def test_decompression_bomb_is_refused_before_decoding():
    with pytest.raises(AppInputError, match="decompression bomb"):
        load_image(png_claiming(50_000, 50_000))


def test_non_image_bytes_are_refused_clearly():
    with pytest.raises(AppInputError, match="not an image"):
        load_image(b"%PDF-1.4 this is a document, not a picture")


def test_bad_base64_is_refused_clearly():
    with pytest.raises(AppInputError, match="not valid base64"):
        decode_base64_image("not base64 at all!!")


def test_data_url_prefix_is_accepted():
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    assert load_image(decode_base64_image(url)).size == (32, 32)


def test_exif_orientation_is_applied():
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.new("RGB", (64, 32), "blue").save(buffer, format="JPEG", exif=exif)
    assert load_image(buffer.getvalue()).size == (32, 64)


def test_tiny_images_are_refused():
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    with pytest.raises(AppInputError, match="at least"):
        load_image(buffer.getvalue())
