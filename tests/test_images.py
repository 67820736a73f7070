"""Image references become the image a browser would show, or an error that says why not."""

from __future__ import annotations

import base64
import io
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from ocr_backend.errors import ImageDecodeError, ImageFetchError
from ocr_backend.images.decode import decode_image
from ocr_backend.images.fetch import ImageFetcher, new_http_client
from tests.support.drawing import draw_page

LIMIT = 50_000_000


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def page() -> Image.Image:
    return draw_page(["MODES"], font_size=32)[0]


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("RGB", "JPEG"), ("RGBA", "PNG"), ("P", "GIF"), ("L", "PNG"), ("CMYK", "JPEG"),
     ("RGB", "WEBP"), ("RGB", "TIFF"), ("RGB", "BMP"), ("1", "PNG"), ("LA", "PNG")],
)  # fmt: skip
def test_every_common_mode_and_format_decodes_to_rgb_with_dark_text_on_white(mode, fmt):
    original = page().convert(mode)
    decoded = decode_image(encoded(original, fmt), max_pixels=LIMIT)
    assert decoded.mode == "RGB" and decoded.size == original.size
    pixels = np.asarray(decoded.convert("L"))
    assert pixels.max() > 200 and pixels.min() < 60  # white page, dark text survived


def test_16_bit_grey_is_scaled_not_clipped_to_white():
    grey16 = np.asarray(page().convert("L"), dtype=np.uint16) * 257
    data = encoded(Image.fromarray(grey16), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")  # really stored as 16-bit
    pixels = np.asarray(decode_image(data, max_pixels=LIMIT).convert("L"))
    assert pixels.min() < 60 and pixels.max() > 200


def test_transparent_pixels_become_white():
    clear = Image.new("RGBA", (50, 50), (0, 0, 0, 0))
    pixels = np.asarray(decode_image(encoded(clear, "PNG"), max_pixels=LIMIT))
    assert (pixels == 255).all()


def test_exif_orientation_is_applied_as_browsers_do():
    upright = page()
    stored = upright.rotate(90, expand=True)  # how a camera stores a portrait shot
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    decoded = decode_image(encoded(stored, "JPEG", exif=exif), max_pixels=LIMIT)
    assert decoded.size == upright.size


def test_a_decompression_bomb_is_refused_from_its_header():
    # A small PNG whose header claims 100000x100000 pixels (30 GB once decoded).
    small = encoded(Image.new("RGB", (8, 8)), "PNG")
    ihdr = b"IHDR" + struct.pack(">II", 100_000, 100_000) + small[24:29]
    bomb = small[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + small[33:]
    with pytest.raises(ImageDecodeError, match="100000x100000 pixels, more than MAX_IMAGE_PIXELS"):
        decode_image(bomb, max_pixels=LIMIT)


def test_bytes_that_are_not_an_image_say_so():
    with pytest.raises(ImageDecodeError, match="not an image Pillow can read"):
        decode_image(b"<html>not found</html>", max_pixels=LIMIT)


def test_a_truncated_image_says_so():
    data = encoded(page(), "PNG")
    with pytest.raises(ImageDecodeError, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2], max_pixels=LIMIT)


async def test_data_uris_and_http_urls_give_the_same_bytes(image_server):
    data = encoded(page(), "PNG")
    (image_server.root / "page.png").write_bytes(data)
    async with new_http_client(5) as client:
        fetcher = ImageFetcher(client, max_bytes=LIMIT)
        uri = "data:image/png;base64," + base64.b64encode(data).decode()
        assert await fetcher.fetch(uri) == data
        assert await fetcher.fetch(image_server.url("page.png")) == data


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (
            "ftp://127.0.0.1/a.png",
            "the scheme 'ftp://' is not supported; use an http(s):// URL or a data: URI",
        ),
        ("file:///etc/passwd", "the scheme 'file://' is not supported"),
        ("", "is empty or not a string"),
    ],
)
async def test_unsupported_references_are_refused_with_the_reason(ref, message):
    async with new_http_client(5) as client:
        with pytest.raises(ImageFetchError, match=re.escape(message)):
            await ImageFetcher(client, max_bytes=LIMIT).fetch(ref)


async def test_a_missing_file_is_a_404_error(image_server):
    async with new_http_client(5) as client:
        with pytest.raises(ImageFetchError, match=r"missing\.png: HTTP 404 Not Found"):
            await ImageFetcher(client, max_bytes=LIMIT).fetch(image_server.url("missing.png"))


async def test_a_download_over_the_limit_is_stopped(image_server):
    (image_server.root / "big.bin").write_bytes(b"x" * 200_000)
    async with new_http_client(5) as client:
        with pytest.raises(ImageFetchError, match="larger than MAX_IMAGE_BYTES=100000"):
            await ImageFetcher(client, max_bytes=100_000).fetch(image_server.url("big.bin"))


async def test_a_refused_connection_says_so():
    async with new_http_client(5) as client:
        with pytest.raises(ImageFetchError, match="cannot fetch image http://127.0.0.1:9/"):
            await ImageFetcher(client, max_bytes=LIMIT).fetch("http://127.0.0.1:9/x.png")
