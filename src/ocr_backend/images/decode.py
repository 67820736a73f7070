"""Image bytes -> decoded, EXIF-oriented 8-bit RGB, refused before decoding when too large.

Knows nothing about OCR. Every failure is an ImageDecodeError whose message
says what is wrong with the image and what the user can do about it.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageDecodeError

# What a task that points at a PDF is told: Label Studio shows images, not PDFs.
PDF_ADVICE = (
    "a PDF, which Label Studio shows as images only: turn each PDF into one multi-page task "
    "with `ocr-backend pdf-to-tasks FILE.pdf --out DIR`, import the tasks it writes and use "
    '<Image valueList="$pages"> in the label config'
)
PDF_MAGIC = b"%PDF-"

# Pillow's process-wide bomb guard is replaced by decode_image's MAX_IMAGE_PIXELS check,
# which reads the header and refuses before any pixel is decoded.
Image.MAX_IMAGE_PIXELS = None


def decode_image(data: bytes, *, max_pixels: int) -> Image.Image:
    """Bytes -> 8-bit RGB image as displayed: EXIF orientation applied, transparency on white.

    The pixel count is checked from the header, before any pixel is decoded.
    """
    if data[:1024].lstrip().startswith(PDF_MAGIC):
        raise ImageDecodeError(f"the file is {PDF_ADVICE}", reason="pdf")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        start = f", starts with {data[:16]!r}" if data else ""
        raise ImageDecodeError(
            f"the file is not an image Pillow can read ({len(data)} bytes{start})"
        ) from None
    except OSError as exc:
        raise ImageDecodeError(f"the image cannot be decoded: {exc}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"the image is {width}x{height} pixels, more than MAX_IMAGE_PIXELS={max_pixels}; "
            "refused before decoding. Raise MAX_IMAGE_PIXELS or use a smaller image",
            reason="too_many_pixels",
        )
    try:
        image.load()
        image = ImageOps.exif_transpose(image) or image
        return to_rgb(image)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(f"the image is truncated or corrupt: {exc}") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB, scaling 16/32-bit grey instead of clipping it to white."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        grey = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or grey.max() > 255 else 255.0
        scaled = np.clip(grey / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(scaled, mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
