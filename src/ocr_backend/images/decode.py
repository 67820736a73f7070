"""Image bytes -> decoded, EXIF-oriented 8-bit RGB, refused before decoding when too large.

`decode_page` also gives the grey picture OpenCV decodes from the same
bytes, as the OCR engine wants it (images/planes.py says why). Every failure
is an ImageDecodeError whose message says what is wrong with the image and
what the user can do about it.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from ..errors import ImageDecodeError
from .planes import with_grey

# What a task that points at a PDF is told: Label Studio shows images, not PDFs.
PDF_ADVICE = (
    "a PDF, which Label Studio shows as images only: turn each PDF into one multi-page task "
    "with `ocr-backend pdf-to-tasks FILE.pdf --out DIR`, import the tasks it writes and use "
    '<Image valueList="$pages"> in the label config'
)
PDF_MAGIC = b"%PDF-"

# Pillow's process-wide bomb guard is replaced by decode_image's MAX_IMAGE_PIXELS check,
# which reads the header and refuses before any pixel is decoded. Should the guard be on
# all the same (another library may set it), its error is the same per-task refusal.
Image.MAX_IMAGE_PIXELS = None

# The formats read, and only these: Pillow opens whatever it recognises otherwise, and
# some containers decode inside Image.open, before the size can be checked (an ICO's
# embedded PNG: a 249 KB ICO cost 241 MB; ICNS decodes whole).
FORMATS = (
    "PNG", "JPEG", "GIF", "WEBP", "TIFF", "BMP", "AVIF", "JPEG2000", "PPM", "TGA", "PCX", "QOI",
)  # fmt: skip

# Rows converted at a time from 16/32-bit grey: the float copy stays a few MB, not
# 8 bytes per pixel of the whole image.
ROWS_AT_ONCE = 256


def decode_image(data: bytes, *, max_pixels: int) -> Image.Image:
    """Bytes -> 8-bit RGB image as displayed: EXIF orientation applied, see-through on white.

    The pixel count is checked from the header, before any pixel is decoded.
    """
    image, turn = _decode_stored(data, max_pixels=max_pixels)
    return _turned(to_rgb(image), turn)


def decode_page(data: bytes, *, max_pixels: int) -> np.ndarray:
    """Bytes -> the four planes the OCR engine reads: RGB and grey, both as displayed.

    The colour is `decode_image`'s. The grey of a JPEG or 8-bit PNG is
    OpenCV's, decoded from the same bytes as EasyOCR's `readtext(path)`
    decodes it, so a page reads exactly as EasyOCR reads its file. Both are
    turned by the one EXIF orientation Pillow read: EasyOCR itself turns only
    its grey picture (OpenCV applies EXIF, its colour reader does not), which
    reads a turned photo's text in the wrong places.
    """
    image, turn = _decode_stored(data, max_pixels=max_pixels)
    rgb = np.asarray(to_rgb(image))
    grey = _opencv_grey(data, image, rgb)
    if turn is not None:
        rgb, grey = (
            np.asarray(Image.fromarray(rgb).transpose(turn)),
            np.asarray(Image.fromarray(grey).transpose(turn)),
        )
    return with_grey(rgb, grey)


# Pillow modes whose bytes OpenCV greys as EasyOCR would read them. 16-bit grey is scaled
# by to_rgb and CMYK converted by Pillow's own rules: their grey is made from the colour.
_OPENCV_GREY_FORMATS = {"JPEG", "MPO", "PNG"}
_OPENCV_GREY_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA"}
# EXIF orientation -> the turn that shows the picture upright (as ImageOps.exif_transpose).
_TURNS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _decode_stored(data: bytes, *, max_pixels: int) -> tuple[Image.Image, Image.Transpose | None]:
    """The image as stored, decoded, and the turn its EXIF orientation asks for.

    The pixel count is checked from the header, before any pixel is decoded.
    Whatever Pillow or its codecs raise on hostile bytes is this image's error.
    """
    if data[:1024].lstrip().startswith(PDF_MAGIC):
        raise ImageDecodeError(f"the file is {PDF_ADVICE}", reason="pdf")
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:
        raise too_many_pixels(str(exc), max_pixels) from None
    except Exception as exc:
        raise unreadable(data, exc) from None
    width, height = image.size
    if width * height > max_pixels:
        raise too_many_pixels(f"the image is {width}x{height} pixels", max_pixels)
    try:
        image.load()
        if image.size[0] * image.size[1] > max_pixels:  # a frame larger than the header said
            raise too_many_pixels(
                f"the image is {image.size[0]}x{image.size[1]} pixels", max_pixels
            )
        return image, _TURNS.get(image.getexif().get(0x0112, 1))
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise too_many_pixels(str(exc), max_pixels) from None
    except Exception as exc:
        raise ImageDecodeError(
            f"the image is truncated or corrupt: {type(exc).__name__}: {exc}"
        ) from None


def _turned(image: Image.Image, turn: Image.Transpose | None) -> Image.Image:
    return image if turn is None else image.transpose(turn)


def _opencv_grey(data: bytes, stored: Image.Image, rgb: np.ndarray) -> np.ndarray:
    """The stored picture's grey as OpenCV decodes it, where it reads the format alike."""
    grey = None
    if stored.format in _OPENCV_GREY_FORMATS and stored.mode in _OPENCV_GREY_MODES:
        flags = cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION
        grey = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if grey is None or grey.shape != rgb.shape[:2] or grey.dtype != np.uint8:
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if stored.mode in ("LA", "PA", "RGBA") or "transparency" in stored.info:
        # OpenCV drops alpha; where to_rgb painted a see-through pixel white, grey it white.
        grey = np.where((rgb == 255).all(axis=2), np.uint8(255), grey)
    return grey


def unreadable(data: bytes, exc: Exception) -> ImageDecodeError:
    """The bytes are no image of FORMATS, or their header cannot be read."""
    kind = sniff(data)
    if kind is not None and kind not in FORMATS:
        return ImageDecodeError(
            f"the file is in {kind} format, which is not read here; send one of "
            f"{', '.join(FORMATS)}",
            reason="format",
        )
    if kind is not None:
        return ImageDecodeError(f"the {kind} image cannot be decoded: {type(exc).__name__}: {exc}")
    return ImageDecodeError(
        f"the file is not an image Pillow can read ({len(data)} bytes{looks_like(data)}); "
        f"send one of {', '.join(FORMATS)}"
    )


def looks_like(data: bytes) -> str:
    """What the bytes seem to be, without quoting them: they may be any server's answer."""
    head = data[:512].lstrip().lower()
    if not head:
        return ", empty"
    if head.startswith((b"<!doctype html", b"<html")) or b"<body" in head:
        return ", an HTML page: a login or error page instead of the image?"
    if head.startswith((b"{", b"[")):
        return ", JSON: an API's answer instead of the image?"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    return ", text"


def sniff(data: bytes) -> str | None:
    """The format Pillow would take these bytes for, from their first bytes only."""
    Image.init()
    head = data[:64]
    for name, (_, accept) in Image.OPEN.items():
        try:
            if accept is not None and accept(head) is True:
                return name
        except Exception:  # noqa: BLE001, S112 - a plugin's check failing on odd bytes: not it
            continue
    return None


def too_many_pixels(what: str, max_pixels: int) -> ImageDecodeError:
    return ImageDecodeError(
        f"{what}, more than MAX_IMAGE_PIXELS={max_pixels}; refused before decoding. "
        "Raise MAX_IMAGE_PIXELS or use a smaller image",
        reason="too_many_pixels",
    )


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB, scaling 16/32-bit grey instead of clipping it to white."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return Image.fromarray(grey_to_8_bit(image), mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return _see_through_white(image.convert("RGBA"))
    # convert() copies even to the mode the image has: a second page in memory.
    return image if image.mode == "RGB" else image.convert("RGB")


def grey_to_8_bit(image: Image.Image) -> np.ndarray:
    """16/32-bit grey scaled to 0-255, a band of rows at a time.

    Converting the whole image in float64 at once cost about 27 bytes per pixel.
    """
    grey = np.asarray(image)
    top = 65535.0 if image.mode.startswith("I;16") or grey.max() > 255 else 255.0
    out = np.empty(grey.shape, dtype=np.uint8)
    for row in range(0, grey.shape[0], ROWS_AT_ONCE):
        band = grey[row : row + ROWS_AT_ONCE].astype(np.float64)
        out[row : row + ROWS_AT_ONCE] = np.clip(band / top * 255.0 + 0.5, 0, 255)
    return out


def _see_through_white(rgba: Image.Image) -> Image.Image:
    """RGB with the wholly see-through pixels white, the others as stored, alpha dropped.

    A wholly see-through pixel's colour is whatever the encoder left (often
    black, which hides black text); a viewer shows white page there. Every
    other pixel keeps its colour, as EasyOCR reads a PNG (it drops alpha):
    an opaque or nearly opaque picture reads exactly as EasyOCR reads it.
    """
    pixels = np.array(rgba)
    pixels[pixels[:, :, 3] == 0, :3] = 255
    return Image.fromarray(pixels[:, :, :3], mode="RGB")
