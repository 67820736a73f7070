"""Real photos, camera-like variants of them, and boxes drawn around their lines as people draw.

Shared by tests/test_real_photos.py and bench/interactive.py. The photos in
tests/images/ (README.md there) are read from their files; the variants are
made from them here: a JPEG as a phone saves one, EXIF-turned shots, light
text on dark, the page photographed askew.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

IMAGES = Path(__file__).resolve().parents[1] / "images"
STREET_SIGNS = IMAGES / "street_signs.png"  # RGBA; white on blue and green, red, CJK
DIAGRAM = IMAGES / "diagram_white_on_colour.jpeg"  # white on green and cyan
SCREENSHOT = IMAGES / "label_studio_screenshot.png"  # small grey UI text, white on dark chips

# street_signs.png's three photos without the printed lists beside them: those lists are
# 97 of its 116 lines, and three quarters of the time a whole-page read of it takes.
SIGN_PHOTOS = (0, 0, 370, 600)
EXIF_ORIENTATION = 0x0112
SKEW_DEGREES = 5.0  # clockwise, how far the askew variant is turned


def sign_photos() -> Image.Image:
    """The three street-sign photos of street_signs.png alone (SIGN_PHOTOS), quick to read."""
    with Image.open(STREET_SIGNS) as image:
        return image.crop(SIGN_PHOTOS)


def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def camera_jpeg(image: Image.Image) -> bytes:
    """As a phone saves a shot: resampled, a little soft and noisy, JPEG at quality 70, 4:2:0."""
    rgb = image.convert("RGB")
    rgb = rgb.resize((round(rgb.width * 0.9), round(rgb.height * 0.9)), Image.Resampling.BICUBIC)
    rgb = rgb.filter(ImageFilter.GaussianBlur(0.6))
    noise = np.random.default_rng(14).normal(0, 4, (rgb.height, rgb.width, 3))
    noisy = np.clip(np.asarray(rgb, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    return encoded(Image.fromarray(noisy), "JPEG", quality=70, subsampling=2)


def stored_turned(upright: Image.Image, fmt: str, **options: Any) -> bytes:
    """How a camera stores a portrait shot: pixels turned, EXIF orientation 6 to show upright."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # "turn 90 degrees clockwise to display"
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    return encoded(stored, fmt, exif=exif, **options)


def light_on_dark(image: Image.Image) -> Image.Image:
    """Dark mode: the screenshot's colours inverted, light text on dark grey."""
    inverted = 255 - np.asarray(image.convert("RGB"), dtype=np.int16)
    return Image.fromarray((inverted * 0.85 + 20).astype(np.uint8))


def askew(image: Image.Image) -> Image.Image:
    """The page photographed turned SKEW_DEGREES clockwise, the corners filled with its edge."""
    return image.convert("RGB").rotate(
        -SKEW_DEGREES, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(128, 128, 128)
    )


def askew_point(x: float, y: float, size: tuple[int, int]) -> tuple[float, float]:
    """Where a point of the upright image lies in `askew(image)` (size: the upright size)."""
    width, height = size
    angle = math.radians(SKEW_DEGREES)
    cos, sin = math.cos(angle), math.sin(angle)
    new_width = abs(width * cos) + abs(height * sin)
    new_height = abs(width * sin) + abs(height * cos)
    dx, dy = x - width / 2, y - height / 2
    return new_width / 2 + dx * cos - dy * sin, new_height / 2 + dx * sin + dy * cos


@dataclass(frozen=True)
class Line:
    """One line `readtext` found on a page: its corners in pixels and its text."""

    corners: tuple[tuple[float, float], ...]
    text: str
    score: float

    @property
    def height(self) -> float:
        ys = [y for _, y in self.corners]
        return max(ys) - min(ys)


@dataclass(frozen=True)
class DrawnBox:
    """A region drawn around one line: Label Studio's value, and the pixels it spans."""

    line: Line
    value: dict[str, Any]
    bounds: tuple[int, int, int, int]  # left, top, right, bottom: the crop a user would save
    kind: str


def lines_of(found: Sequence[tuple[Any, Any, Any]], min_score: float = 0.5) -> list[Line]:
    """readtext's confident lines with English text worth drawing a box around."""
    lines = []
    for box, text, score in found:
        text = str(text).strip()
        if float(score) >= min_score and sum(ch.isalnum() for ch in text) >= 3:
            corners = tuple((float(x), float(y)) for x, y in box)
            lines.append(Line(corners=corners, text=text, score=float(score)))
    return lines


def spread(lines: Sequence[Line], count: int) -> list[Line]:
    """`count` lines spread over the page, top to bottom."""
    ordered = sorted(lines, key=lambda line: (line.corners[0][1], line.corners[0][0]))
    if len(ordered) <= count:
        return ordered
    step = len(ordered) / count
    return [ordered[int(i * step)] for i in range(count)]


def loose_rectangle(line: Line, size: tuple[int, int], turn: int) -> DrawnBox:
    """An upright box with a margin as people draw: uneven, one in three cutting into a neighbour."""
    width, height = size
    xs, ys = [x for x, _ in line.corners], [y for _, y in line.corners]
    h = line.height
    left, right = min(xs) - (0.3 + 0.2 * (turn % 2)) * h, max(xs) + (0.25 + 0.15 * (turn % 3)) * h
    top, bottom = min(ys) - 0.3 * h, max(ys) + 0.35 * h
    if turn % 3 == 1:
        top -= 0.5 * h  # reaches up into the line above, if there is one
    elif turn % 3 == 2:
        bottom += 0.5 * h
    left, top = max(0.0, left), max(0.0, top)
    right, bottom = min(float(width), right), min(float(height), bottom)
    value = {
        "x": left / width * 100,
        "y": top / height * 100,
        "width": (right - left) / width * 100,
        "height": (bottom - top) / height * 100,
        "rotation": 0,
    }
    bounds = (math.floor(left), math.floor(top), math.ceil(right), math.ceil(bottom))
    return DrawnBox(line, value, bounds, "rectangle")


def askew_boxes(line: Line, upright: tuple[int, int], turn: int) -> DrawnBox:
    """A line of the askew page: a rotated rectangle along it, or a polygon around it."""
    xs, ys = [x for x, _ in line.corners], [y for _, y in line.corners]
    h = line.height
    left, right = min(xs) - 0.35 * h, max(xs) + 0.3 * h
    top, bottom = min(ys) - 0.35 * h, max(ys) + 0.4 * h
    corners = [
        askew_point(x, y, upright)
        for x, y in ((left, top), (right, top), (right, bottom), (left, bottom))
    ]
    turned = askew(Image.new("L", upright)).size
    width, height = turned
    cx, cy = [c[0] for c in corners], [c[1] for c in corners]
    bounds = (
        max(0, math.floor(min(cx))),
        max(0, math.floor(min(cy))),
        min(width, math.ceil(max(cx))),
        min(height, math.ceil(max(cy))),
    )
    if turn % 2 == 0:
        x, y = corners[0]
        value = {
            "x": x / width * 100,
            "y": y / height * 100,
            "width": (right - left) / width * 100,
            "height": (bottom - top) / height * 100,
            "rotation": SKEW_DEGREES,
        }
        return DrawnBox(line, value, bounds, "rotated rectangle")
    # A hand-drawn polygon: six points, the sides a little uneven.
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = corners
    points = [
        (x0, y0),
        ((x0 + x1) / 2, (y0 + y1) / 2 - 0.15 * h),
        (x1, y1),
        (x2, y2),
        ((x2 + x3) / 2, (y2 + y3) / 2 + 0.1 * h),
        (x3, y3),
    ]
    value = {"points": [[px / width * 100, py / height * 100] for px, py in points]}
    return DrawnBox(line, value, bounds, "polygon")


def character_error_rate(read: str, truth: str) -> float:
    """Edits (insert, delete, substitute) from `read` to `truth`, per character of `truth`."""
    read, truth = " ".join(read.split()), " ".join(truth.split())
    previous = list(range(len(truth) + 1))
    for i, a in enumerate(read, 1):
        current = [i]
        for j, b in enumerate(truth, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return previous[-1] / max(1, len(truth))
