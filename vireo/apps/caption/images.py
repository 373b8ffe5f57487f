"""Turn untrusted image input (base64 or bytes) into a safe, upright RGB picture.

Limits are checked on the header before any pixel is decoded, so a small file that claims a huge
canvas (a decompression bomb) is refused without allocating it.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from vireo.apps.base import AppInputError

MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000  # ~ 8000 x 5000; far above what the vision models look at
MIN_SIDE = 16
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
_DATA_URL = re.compile(r"^data:image/[\w.+-]+;base64,", re.IGNORECASE)

if Image.MAX_IMAGE_PIXELS is None or Image.MAX_IMAGE_PIXELS > MAX_IMAGE_PIXELS:
    # Pillow's own bomb guard stays on even if another library disabled it
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


def decode_base64_image(text: str) -> bytes:
    """Bytes of a base64 image (a bare string or a `data:image/...;base64,` URL)."""
    payload = _DATA_URL.sub("", text.strip(), count=1)
    if len(payload) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise AppInputError(f"image is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MiB; send a smaller file")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise AppInputError(
            "image_base64 is not valid base64: send the file's bytes base64-encoded "
            "(optionally as a data:image/...;base64, URL)"
        ) from None


def load_image(data: bytes) -> Image.Image:
    """An RGB image, rotated by its EXIF orientation; AppInputError for anything unsafe or unknown."""
    if not data:
        raise AppInputError("the image is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise AppInputError(f"image is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES} bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
            _check_header(image)
            image.load()
            upright = ImageOps.exif_transpose(image)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _too_many_pixels(None) from None
        except UnidentifiedImageError:
            raise AppInputError(
                "this is not an image Vireo can read; send a PNG, JPEG, WebP, GIF, BMP or TIFF file"
            ) from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise AppInputError(f"the image file is damaged or truncated ({exc})") from None
    return upright.convert("RGB")


def _check_header(image: Image.Image) -> None:
    if image.format not in ALLOWED_FORMATS:
        raise AppInputError(f"image format {image.format} is not accepted; use one of {', '.join(ALLOWED_FORMATS)}")
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise _too_many_pixels((width, height))
    if min(width, height) < MIN_SIDE:
        raise AppInputError(f"image is {width}x{height} pixels; each side needs at least {MIN_SIDE}")


def _too_many_pixels(size: tuple[int, int] | None) -> AppInputError:
    claimed = f"claims {size[0]}x{size[1]} pixels" if size else "decompresses to too many pixels"
    return AppInputError(
        f"image {claimed}; the limit is {MAX_IMAGE_PIXELS:,} pixels "
        "(a possible decompression bomb), so it was not decoded"
    )
