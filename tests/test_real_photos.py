"""Real photos and screenshots read as EasyOCR reads them, and boxes drawn on them read as well.

The reference is EasyOCR's own `readtext` on a file: the whole page must
come out equal (texts, boxes, scores), and a box drawn around a line must
read at least as well as `readtext` on that box's pixels saved as a file.
The photos are in tests/images/ (README.md there); tests/photos.py makes the
camera-like variants.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from ocr_backend.images.crop import crop_region
from ocr_backend.images.decode import decode_page
from ocr_backend.label_studio.regions import reading_order
from ocr_backend.ocr.lines import TextLine
from ocr_backend.ocr.local import LocalEngine
from tests.support.photos import (
    DIAGRAM,
    SCREENSHOT,
    STREET_SIGNS,
    DrawnBox,
    askew,
    askew_boxes,
    camera_jpeg,
    character_error_rate,
    encoded,
    light_on_dark,
    lines_of,
    loose_rectangle,
    spread,
    stored_turned,
)

pytestmark = pytest.mark.slow  # EasyOCR on whole photos, several minutes

LIMIT = 50_000_000
LINES_PER_PAGE = 6  # boxes drawn per page: enough lines to average, few enough for CI


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every page as a file: the photos as they are, and variants made from them."""
    folder = tmp_path_factory.mktemp("photos")
    diagram = Image.open(DIAGRAM)
    # The screenshot's left half: its sidebar and toolbar text, at half the reading time.
    screenshot = Image.open(SCREENSHOT).convert("RGB").crop((0, 0, 1000, 560))
    made = {
        "camera.jpeg": camera_jpeg(diagram),
        "screenshot.png": encoded(screenshot, "PNG"),
        "dark_mode.png": encoded(light_on_dark(screenshot), "PNG"),
        "upright.png": encoded(diagram.convert("RGB"), "PNG"),
        "turned.png": stored_turned(diagram.convert("RGB"), "PNG"),
        "turned.jpeg": stored_turned(diagram.convert("RGB"), "JPEG", quality=90),
        "askew.png": encoded(askew(Image.open(STREET_SIGNS)), "PNG"),
    }
    paths = {"street_signs.png": STREET_SIGNS, "diagram.jpeg": DIAGRAM}
    for name, data in made.items():
        (folder / name).write_bytes(data)
        paths[name] = folder / name
    return paths


_readtext_cache: dict[tuple[str, ...], list[tuple[Any, Any, Any]]] = {}


def in_ocr_thread(engine: LocalEngine, read: Callable[[], Any]) -> Any:
    # A reader is only fast in the thread that built it (engine.py): read there.
    return engine._pool.submit(read).result()


def readtext(engine: LocalEngine, path: Path) -> list[tuple[Any, Any, Any]]:
    """EasyOCR's `readtext` on the file, once per module."""
    key = (str(path),)
    if key not in _readtext_cache:
        _readtext_cache[key] = in_ocr_thread(
            engine, lambda: engine.reader.easyocr.readtext(str(path))
        )
    return _readtext_cache[key]


def readtext_turned_consistently(engine: LocalEngine, path: Path) -> list[tuple[Any, Any, Any]]:
    """readtext with both its decoders turned by the EXIF orientation.

    readtext(path) itself reads an EXIF-turned file's colour unturned
    (scikit-image) and its grey turned (OpenCV); its detector's boxes then
    fall in the wrong places of the grey picture.
    """
    rgb = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)  # OpenCV applies EXIF itself

    def read() -> list[tuple[Any, Any, Any]]:
        horizontal, free = engine.reader.easyocr.detect(rgb, reformat=False)
        return engine.reader.easyocr.recognize(grey, horizontal[0], free[0], reformat=False)

    return in_ocr_thread(engine, read)


def as_triples(lines: list[TextLine]) -> list[tuple[list[list[int]], str, float]]:
    return [
        ([[round(x), round(y)] for x, y in line.polygon], line.text, line.score) for line in lines
    ]


def reference_triples(
    found: list[tuple[Any, Any, Any]],
) -> list[tuple[list[list[int]], str, float]]:
    """readtext's answer as the service words it: texts trimmed, empty ones left out."""
    return [
        ([[round(float(x)), round(float(y))] for x, y in box], str(text).strip(), float(score))
        for box, text, score in found
        if str(text).strip()
    ]


@pytest.mark.parametrize(
    ("page", "reference"),
    [
        ("street_signs.png", "street_signs.png"),  # RGBA, alpha below 255 at edges
        ("diagram.jpeg", "diagram.jpeg"),
        ("camera.jpeg", "camera.jpeg"),
        ("screenshot.png", "screenshot.png"),
        ("turned.png", "upright.png"),  # EXIF-turned; the same pixels stored upright
        ("turned.jpeg", None),  # EXIF-turned JPEG; readtext with its decoders agreeing
    ],
)
def test_a_whole_page_reads_exactly_as_readtext_reads_its_file(engine, pages, page, reference):
    data = pages[page].read_bytes()
    got = as_triples(asyncio.run(engine.read(decode_page(data, max_pixels=LIMIT))))
    if reference is None:
        expected = reference_triples(readtext_turned_consistently(engine, pages[page]))
    else:
        expected = reference_triples(readtext(engine, pages[reference]))
    assert len(expected) >= 10
    assert [(box, text) for box, text, _ in got] == [(box, text) for box, text, _ in expected]
    assert [score for *_, score in got] == pytest.approx(
        [score for *_, score in expected], abs=1e-6
    )


def test_black_text_on_a_see_through_background_is_read(engine, pages):
    """Where EasyOCR sees black on the black a see-through PNG hides, the service sees a page."""
    title = np.asarray(Image.open(DIAGRAM).convert("L").crop((0, 0, 1000, 60)))
    clear = np.zeros((*title.shape, 4), dtype=np.uint8)
    clear[:, :, 3] = np.where(title < 128, 255, 0)  # dark title letters opaque, the rest clear
    data = encoded(Image.fromarray(clear, "RGBA"), "PNG")
    lines = asyncio.run(engine.read(decode_page(data, max_pixels=LIMIT)))
    assert "EasyOCR Framework" in [line.text for line in lines]


def drawn_boxes(engine: LocalEngine, pages: dict[str, Path]) -> list[tuple[str, DrawnBox]]:
    """Boxes around lines readtext reads with confidence >= 0.5, on four kinds of page."""
    boxes: list[tuple[str, DrawnBox]] = []
    for name in ("street_signs.png", "diagram.jpeg", "screenshot.png", "dark_mode.png"):
        size = Image.open(pages[name]).size
        chosen = spread(lines_of(readtext(engine, pages[name])), LINES_PER_PAGE)
        boxes += [(name, loose_rectangle(line, size, turn)) for turn, line in enumerate(chosen)]
    upright = Image.open(STREET_SIGNS).size
    chosen = spread(lines_of(readtext(engine, pages["street_signs.png"])), LINES_PER_PAGE)
    boxes += [("askew.png", askew_boxes(line, upright, turn)) for turn, line in enumerate(chosen)]
    return boxes


def test_boxes_drawn_loosely_read_at_least_as_well_as_readtext_on_the_crop(engine, pages, tmp_path):
    decoded = {
        name: decode_page(path.read_bytes(), max_pixels=LIMIT) for name, path in pages.items()
    }
    service_errors, readtext_errors = [], []
    for name, box in drawn_boxes(engine, pages):
        crop = crop_region(decoded[name], box.value)
        assert crop is not None
        ours = reading_order(asyncio.run(engine.read_region(crop)))
        left, top, right, bottom = box.bounds
        saved = tmp_path / f"{name}-{left}-{top}.png"
        Image.open(pages[name]).convert("RGB").crop((left, top, right, bottom)).save(saved)
        theirs = reading_order(
            [
                TextLine(tuple(map(tuple, b)), str(t).strip(), float(s))
                for b, t, s in readtext(engine, saved)
            ]
        )
        service_errors.append(character_error_rate(ours, box.line.text))
        readtext_errors.append(character_error_rate(theirs, box.line.text))
        print(
            f"{name:17} {box.kind:17} {box.line.text!r:32} service {ours!r:34} readtext {theirs!r}"
        )
    service, reference = np.mean(service_errors), np.mean(readtext_errors)
    print(
        f"{len(service_errors)} boxes; character error rate: service {service:.3f}, readtext on the crop {reference:.3f}"
    )
    assert service <= reference
