"""Fuzz the decoder through /predict: real images, their bytes and headers mutated.

The schema fuzzing (tests/test_fuzz.py) sends well-formed JSON; what breaks
image services is the image itself. Here hypothesis mutates real files
(tests/images/, and smaller copies of them in every format the service reads,
and some it refuses) by flipping bytes, cutting them short, splicing two
files, and rewriting the width and height fields of their headers with valid
checksums. Each mutated image goes to /predict beside a good neighbour, for a
minute in all: the answer is never a 5xx, always one entry per task, and the
neighbour is always read.
"""

from __future__ import annotations

import base64
import io
import struct
import time
import zlib
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import Image

from tests.support.drawing import draw_page
from tests.support.fuzzing import FUZZ_SECONDS
from tests.support.label_studio import ls_predict_body
from tests.support.settings import changed

pytestmark = pytest.mark.slow  # FUZZ_SECONDS of fuzzing

IMAGES = Path(__file__).parent / "images"
NEIGHBOUR = "NEIGHBOUR"
# A small pixel limit keeps each example's OCR short: the decoder is what is fuzzed.
PIXEL_LIMIT = 400_000
# Pillow writes these from the real images; the service reads all but the last three.
FORMATS = {
    "PNG": {}, "JPEG": {"quality": 80}, "GIF": {}, "WEBP": {}, "TIFF": {}, "BMP": {},
    "AVIF": {}, "JPEG2000": {}, "PPM": {}, "TGA": {}, "PCX": {}, "QOI": {},
    "ICO": {}, "DDS": {}, "ICNS": {},
}  # fmt: skip


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@cache
def seeds() -> tuple[bytes, ...]:
    """The real files as they are, and small copies of them in many formats and modes."""
    originals = sorted(IMAGES.glob("*.png")) + sorted(IMAGES.glob("*.jpeg"))
    # Files as they are only where their pixels fit PIXEL_LIMIT: the others' headers are
    # fuzzed through their copies, without OCR of a whole screenshot per example.
    found = []
    for path in originals:
        with Image.open(path) as image:
            if image.width * image.height <= PIXEL_LIMIT:
                found.append(path.read_bytes())
    for path in originals:
        with Image.open(path) as image:
            small = image.convert("RGB")
            small.thumbnail((240, 240))
        for fmt, options in FORMATS.items():
            try:
                found.append(encoded(small, fmt, **options))
            except (OSError, ValueError, KeyError):
                continue  # this Pillow cannot write it
        grey16 = np.asarray(small.convert("L"), dtype=np.uint16) * 257
        found.append(encoded(Image.fromarray(grey16), "PNG"))
        found.append(encoded(small, "PNG", save_all=True, append_images=[small.rotate(90)]))
        found.append(encoded(small.convert("RGBA"), "PNG"))
        found.append(encoded(small.convert("P"), "GIF", transparency=0))
        found.append(encoded(small.convert("CMYK"), "JPEG"))
        found.append(encoded(small.convert("1"), "TIFF", compression="group4"))
    return tuple(found)


def png_with_size(data: bytes, width: int, height: int) -> bytes:
    """A PNG's IHDR rewritten to width x height, its checksum made right again."""
    if not data.startswith(b"\x89PNG") or data[12:16] != b"IHDR":
        return data
    ihdr = b"IHDR" + struct.pack(">II", width, height) + data[24:29]
    return data[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + data[33:]


def jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    """A JPEG's first start-of-frame rewritten to width x height."""
    for marker in (b"\xff\xc0", b"\xff\xc2", b"\xff\xc1"):
        at = data.find(marker)
        if at > 0:
            return (
                data[: at + 5] + struct.pack(">HH", height % 65536, width % 65536) + data[at + 9 :]
            )
    return data


def gif_with_size(data: bytes, width: int, height: int) -> bytes:
    """A GIF's logical screen, or its first frame's, rewritten to width x height."""
    if not data.startswith(b"GIF8"):
        return data
    data = data[:6] + struct.pack("<HH", width % 65536, height % 65536) + data[10:]
    at = data.find(b",", 13)
    if at > 0:
        data = data[: at + 5] + struct.pack("<HH", width % 65536, height % 65536) + data[at + 9 :]
    return data


def bmp_with_size(data: bytes, width: int, height: int) -> bytes:
    if not data.startswith(b"BM") or len(data) < 26:
        return data
    # Signed 32-bit fields (a negative height is a top-down BMP): sizes wrap within them.
    return data[:18] + struct.pack("<II", width % 2**32, height % 2**32) + data[26:]


RESIZERS = (png_with_size, jpeg_with_size, gif_with_size, bmp_with_size)


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    data = draw(st.sampled_from(seeds()))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "cut", "splice", "size", "delete", "repeat"]))
        if kind == "flip" and data:
            mutable = bytearray(data)
            # Headers matter most: aim at the first 512 bytes half of the time.
            span = len(mutable) if draw(st.booleans()) else min(512, len(mutable))
            for _ in range(draw(st.integers(1, 8))):
                mutable[draw(st.integers(0, span - 1))] = draw(st.integers(0, 255))
            data = bytes(mutable)
        elif kind == "cut":
            data = data[: draw(st.integers(0, len(data)))]
        elif kind == "splice":
            other = draw(st.sampled_from(seeds()))
            data = (
                data[: draw(st.integers(0, len(data)))] + other[draw(st.integers(0, len(other))) :]
            )
        elif kind == "size":
            side = st.sampled_from([0, 1, 2, 5000, 65535, 2**31 - 1, 2**32 - 1, 100_000])
            resize = draw(st.sampled_from(RESIZERS))
            data = resize(
                data, draw(side | st.integers(0, 70_000)), draw(side | st.integers(0, 70_000))
            )
        elif kind == "delete" and data:
            start = draw(st.integers(0, len(data) - 1))
            data = data[:start] + data[start + draw(st.integers(1, 64)) :]
        elif kind == "repeat" and data:
            start = draw(st.integers(0, len(data) - 1))
            data = data[:start] + data[start : start + 64] * draw(st.integers(2, 50)) + data[start:]
    return data


def data_uri(data: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def client(client_for, settings, engine, tmp_path_factory):
    limited = changed(
        settings, max_image_pixels=PIXEL_LIMIT, model_dir=tmp_path_factory.mktemp("fuzz")
    )
    with client_for(limited, raise_server_exceptions=False) as c:
        yield c


@pytest.mark.timeout(FUZZ_SECONDS + 600)
def test_no_mutated_image_gives_a_server_error_or_spoils_its_neighbour(client):
    buffer = io.BytesIO()
    draw_page([NEIGHBOUR])[0].save(buffer, "PNG")
    neighbour = data_uri(buffer.getvalue())
    sent = []
    seeds()  # made once, before the clock starts

    @given(image=mutated_images())
    @hypothesis_settings(
        max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def fuzz(image: bytes) -> None:
        sent.append(len(image))
        response = client.post("/predict", json=ls_predict_body(data_uri(image), neighbour))
        assert response.status_code == 200, response.text
        mutated, good = response.json()["results"]
        assert mutated.get("error") or mutated.get("result") is not None
        texts = [i["value"]["text"][0] for i in good["result"] if i["type"] == "textarea"]
        assert texts == [NEIGHBOUR] and "error" not in good

    started = time.monotonic()
    while time.monotonic() - started < FUZZ_SECONDS:
        fuzz()
    print(f"\n{len(sent)} mutated images in {time.monotonic() - started:.0f} s")
    assert len(sent) >= 10
