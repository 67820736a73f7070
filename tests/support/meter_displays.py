"""Photographs of meter displays in a 14-segment font: a domain where stock EasyOCR is weak.

Each page is an LCD panel with a few lines of readings in DSEG14 (Debian's
fonts-dseg; scripts/install-test-tools.sh installs it), the unlit segments
showing faintly behind the lit ones as on a real display, photographed:
turned a few degrees, blurred, noisy, JPEG-compressed. Every line comes with
its box as Label Studio draws it (percent, rotated about its top-left corner),
so a test can build the annotations an annotator would have made.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

DSEG = Path("/usr/share/fonts/truetype/dseg")
FONTS = ("DSEG14Classic-Regular.ttf", "DSEG14Modern-Regular.ttf", "DSEG14Classic-Bold.ttf")
WORDS = ("PUMP", "TEMP", "FLOW", "TANK", "LVL", "PRES", "VOLT", "AMP", "RPM", "ERR", "SET", "OUT")
UNITS = ("KW", "BAR", "L", "V", "A", "HZ", "C", "M3", "")


def fonts_missing() -> str | None:
    """Why the domain cannot be drawn here, or None."""
    if not (DSEG / FONTS[0]).is_file():
        return f"no {DSEG / FONTS[0]}: apt-get install fonts-dseg (scripts/install-test-tools.sh)"
    return None


@dataclass(frozen=True)
class MeterLine:
    text: str
    geometry: dict[str, float]  # Label Studio's rectangle: x, y, width, height, rotation (percent)


@dataclass(frozen=True)
class MeterPhoto:
    jpeg: bytes
    size: tuple[int, int]
    lines: list[MeterLine]


def reading(rng: random.Random) -> str:
    """One line as a display shows it: a word, a number, maybe a unit."""
    number = f"{rng.uniform(-99, 999):.{rng.choice((0, 1, 2))}f}"
    if rng.random() < 0.25:
        return f"{rng.choice(WORDS)}{rng.randint(1, 9)} {rng.choice('ABCDEFGHKMNPRSTUXZ')}{rng.randint(10, 99)}"
    return " ".join(part for part in (rng.choice(WORDS), number, rng.choice(UNITS)) if part)


def meter_photo(seed: int, lines: int = 5) -> MeterPhoto:
    """One photographed panel of `lines` readings, the same for the same seed."""
    rng = random.Random(seed)
    face = ImageFont.truetype(str(DSEG / rng.choice(FONTS)), rng.randint(26, 40))
    texts = [reading(rng) for _ in range(lines)]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    boxes = [probe.textbbox((0, 0), text, font=face) for text in texts]
    line_height = max(b[3] - b[1] for b in boxes)
    width = max(b[2] for b in boxes) + 120
    height = lines * (line_height + 28) + 60
    paper = tuple(rng.randint(a, b) for a, b in ((140, 190), (160, 200), (120, 160)))
    ink = tuple(rng.randint(15, 55) for _ in range(3))
    ghost = tuple(max(0, c - rng.randint(12, 24)) for c in paper)
    page = Image.new("RGB", (width, height), paper)
    draw = ImageDraw.Draw(page)
    upright: list[tuple[str, tuple[float, float, float, float]]] = []
    y = 30
    for text in texts:
        x = 40 + rng.randint(0, 40)
        # The unlit segments: "~" lights every segment of a 14-segment digit in DSEG.
        draw.text((x, y), "".join("~" if c != " " else " " for c in text), font=face, fill=ghost)
        draw.text((x, y), text, font=face, fill=ink)
        left, top, right, bottom = draw.textbbox((x, y), text, font=face)
        pad = rng.randint(3, 8)
        upright.append((text, (left - pad, top - pad, right + pad, bottom + pad)))
        y += line_height + 28
    pixels = np.asarray(page).astype(np.float32)
    # Light falling across the panel, then the photograph's turn, blur, noise and JPEG.
    shade = np.linspace(rng.uniform(0.8, 1.0), rng.uniform(0.95, 1.15), width, dtype=np.float32)
    pixels *= shade[None, :, None]
    degrees = rng.uniform(-4, 4)  # clockwise, as Label Studio's rotation counts
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), -degrees, 1.0)
    pixels = cv2.warpAffine(pixels, turn, (width, height), borderMode=cv2.BORDER_REPLICATE)
    pixels = cv2.GaussianBlur(pixels, (0, 0), rng.uniform(0.6, 1.4))
    pixels += np.random.default_rng(seed).normal(0, rng.uniform(4, 10), pixels.shape)
    photo = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=rng.randint(45, 75))
    found = []
    for text, (left, top, right, bottom) in upright:
        cx, cy = turn @ np.array([left, top, 1.0])
        found.append(
            MeterLine(
                text,
                {
                    "x": cx / width * 100,
                    "y": cy / height * 100,
                    "width": (right - left) / width * 100,
                    "height": (bottom - top) / height * 100,
                    "rotation": degrees % 360,
                },
            )
        )
    return MeterPhoto(buffer.getvalue(), (width, height), found)


def annotation_result(
    photo: MeterPhoto, *, item_index: int | None = None, prefix: str = "r"
) -> list[dict[str, Any]]:
    """What Label Studio stores for an annotator who drew and transcribed every line:
    per region a rectangle, a labels and a textarea item sharing one id."""
    width, height = photo.size
    result: list[dict[str, Any]] = []
    for number, line in enumerate(photo.lines):
        shared: dict[str, Any] = {
            "id": f"{prefix}{number}",
            "to_name": "image",
            "original_width": width,
            "original_height": height,
            "image_rotation": 0,
            "origin": "manual",
        }
        if item_index is not None:
            shared["item_index"] = item_index
        result += [
            {**shared, "from_name": "bbox", "type": "rectangle", "value": dict(line.geometry)},
            {
                **shared,
                "from_name": "label",
                "type": "labels",
                "value": {**line.geometry, "labels": ["Text"]},
            },
            {
                **shared,
                "from_name": "transcription",
                "type": "textarea",
                "value": {**line.geometry, "text": [line.text]},
            },
        ]
    return result


def rotated_corners(geometry: dict[str, float], size: tuple[int, int]) -> list[tuple[float, float]]:
    """The rectangle's four corners in pixels, clockwise from its top-left."""
    width, height = size
    x, y = geometry["x"] / 100 * width, geometry["y"] / 100 * height
    w, h = geometry["width"] / 100 * width, geometry["height"] / 100 * height
    angle = math.radians(geometry["rotation"])
    cos, sin = math.cos(angle), math.sin(angle)
    return [
        (x + u * cos - v * sin, y + u * sin + v * cos) for u, v in ((0, 0), (w, 0), (w, h), (0, h))
    ]


def text_per_line(found: Iterable[tuple[tuple[float, float], str]], photo: MeterPhoto) -> list[str]:
    """What a reading of the whole photo found on each of its lines: the texts whose centre
    (x, y in pixels) lies in the line's box, left to right, spaces left out (the detector
    splits a line into words where the display leaves a wide gap; no model reads those gaps)."""
    placed = list(found)
    read = []
    for line in photo.lines:
        box = np.array(rotated_corners(line.geometry, photo.size), dtype=np.float32)
        inside = sorted(
            (centre[0], text)
            for centre, text in placed
            if cv2.pointPolygonTest(box, (float(centre[0]), float(centre[1])), False) >= 0
        )
        read.append("".join(text for _, text in inside).replace(" ", ""))
    return read


def line_error_rate(read: Sequence[str], photos: Sequence[MeterPhoto]) -> float:
    """Character error rate of `read` (text_per_line of each photo, one after the other)
    against the photos' lines, spaces left out: edits per character of the truth."""
    from rapidfuzz.distance import Levenshtein

    truth = [line.text.replace(" ", "") for photo in photos for line in photo.lines]
    edits = sum(Levenshtein.distance(r, t) for r, t in zip(read, truth, strict=True))
    return edits / sum(len(t) for t in truth)
