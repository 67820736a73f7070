"""Boxes drawn as people draw them, and how well the service reads each one.

The quality harness for interactive boxes (tests/test_drawn_boxes.py in CI,
`python -m bench.interactive` in full). Not tuned to a few pictures: on every
page, EasyOCR's `readtext` finds the lines it reads with confidence >= 0.5,
and around each of them five boxes are drawn:

- `tight`: on the line's own box, its first and last letters at the edge;
- `loose`: 6% of the line's width more at each side, 30% of its height above
  and below;
- `cut`: loose, and reaching halfway into the line above (or below);
- `rotated`: a Label Studio rectangle turned along the line (3 degrees when
  the line is level), loose around it;
- `polygon`: six points around the loose box, its sides a little uneven.

Each box is read twice: by the service, sent as Label Studio sends it
(`params.context` of an interactive /predict), and by `readtext` on the same
pixels saved as a PNG file (a rotated box straightened first), as a user who
doubts the service would check. Both are scored by their character error
rate (CER) against the line's full-page text.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ocr_backend.label_studio.regions import reading_order
from ocr_backend.ocr.lines import TextLine
from tests.support.photos import DIAGRAM, SCREENSHOT, STREET_SIGNS, character_error_rate
from tests.support.signs import MADE

MIN_SCORE = 0.5
KINDS = ("tight", "loose", "cut", "rotated", "polygon")
LOOSE_X, LOOSE_Y = 0.06, 0.30  # of the line's width at each side, of its height above/below
LEVEL_TURN = 3.0  # degrees a rotated box is turned around a level line


@dataclass(frozen=True)
class PageLine:
    """A line `readtext` found on the full page: its four corners in pixels, its text."""

    corners: tuple[tuple[float, float], ...]
    text: str

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        xs, ys = [x for x, _ in self.corners], [y for _, y in self.corners]
        return min(xs), min(ys), max(xs), max(ys)

    @property
    def angle(self) -> float:
        """Degrees clockwise of the line's top edge."""
        (x0, y0), (x1, y1) = self.corners[0], self.corners[1]
        return math.degrees(math.atan2(y1 - y0, x1 - x0))

    @property
    def length(self) -> float:
        (x0, y0), (x1, y1) = self.corners[0], self.corners[1]
        return math.hypot(x1 - x0, y1 - y0)

    @property
    def thickness(self) -> float:
        (x1, y1), (x2, y2) = self.corners[1], self.corners[2]
        return math.hypot(x2 - x1, y2 - y1)


@dataclass(frozen=True)
class Box:
    """One box drawn around a line: what Label Studio sends, and the pixels it holds."""

    page: str  # the page's file name
    line: PageLine
    kind: str
    region: dict[str, Any]  # one item of params.context.result
    # The box's corners in pixels, top-left first, clockwise (the polygon's own points).
    outline: tuple[tuple[float, float], ...]

    def crop(self, page: Image.Image) -> Image.Image:
        """The box's pixels as a user would save them: upright, no margin."""
        rgb = page.convert("RGB")
        if self.kind == "rotated":
            return _straightened(rgb, self.outline)
        xs, ys = [x for x, _ in self.outline], [y for _, y in self.outline]
        if self.kind == "polygon":
            return rgb.crop((math.floor(min(xs)), math.floor(min(ys)),
                             math.ceil(max(xs)), math.ceil(max(ys))))  # fmt: skip
        return rgb.crop((round(min(xs)), round(min(ys)), round(max(xs)), round(max(ys))))


@dataclass(frozen=True)
class Case:
    """One box, read by the service and by readtext on its saved crop."""

    box: Box
    service: str
    readtext: str
    seconds: float  # the service's answer time

    @property
    def service_cer(self) -> float:
        return character_error_rate(self.service, self.box.line.text)

    @property
    def readtext_cer(self) -> float:
        return character_error_rate(self.readtext, self.box.line.text)

    @property
    def loss(self) -> float:
        """How much worse the service read than readtext on the crop (negative: better)."""
        return self.service_cer - self.readtext_cer


def make_pages(folder: Path) -> dict[str, Path]:
    """Every real image of tests/images/ and the photos tests/support/signs.py makes."""
    pages = {}
    for path in (STREET_SIGNS, DIAGRAM, SCREENSHOT):
        (folder / path.name).write_bytes(path.read_bytes())
        pages[path.name] = folder / path.name
    for name, make in MADE.items():
        (folder / name).write_bytes(make())
        pages[name] = folder / name
    return pages


def page_lines(found: Sequence[TextLine]) -> list[PageLine]:
    """readtext's lines read with confidence >= 0.5 that hold at least two letters or digits."""
    return [
        PageLine(tuple((float(x), float(y)) for x, y in line.polygon), line.text)
        for line in found
        if line.score >= MIN_SCORE and sum(ch.isalnum() for ch in line.text) >= 2
    ]


def draw_boxes(
    page: str, line: PageLine, others: Sequence[PageLine], size: tuple[int, int], turn: int
) -> list[Box]:
    """The five kinds of box around `line` (see the module's docstring)."""
    width, height = size
    left, top, right, bottom = line.bounds
    tall, wide = bottom - top, right - left
    loose = (left - LOOSE_X * wide, top - LOOSE_Y * tall,
             right + LOOSE_X * wide, bottom + LOOSE_Y * tall)  # fmt: skip
    boxes = [
        upright_box(page, line, "tight", (left, top, right, bottom), size),
        upright_box(page, line, "loose", loose, size),
        upright_box(page, line, "cut", _into_neighbour(line, others, loose), size),
    ]
    angle = line.angle if abs(line.angle) >= 1 else LEVEL_TURN * (1 if turn % 2 else -1)
    boxes.append(_rotated(page, line, angle, size))
    l, t = max(0.0, loose[0]), max(0.0, loose[1])  # noqa: E741
    r, b = min(float(width), loose[2]), min(float(height), loose[3])
    bulge = 0.15 * tall
    points = ((l, t), ((l + r) / 2, max(0.0, t - bulge)), (r, t), (r, b),
              ((l + r) / 2, min(float(height), b + bulge)), (l, b))  # fmt: skip
    value = {"points": [[x / width * 100, y / height * 100] for x, y in points]}
    boxes.append(Box(page, line, "polygon", _region(value, "polygon", size), points))
    return boxes


def _into_neighbour(
    line: PageLine, others: Sequence[PageLine], loose: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    """The loose box, reaching halfway into the nearest line above (else below) it."""
    left, top, right, bottom = line.bounds
    tall = bottom - top
    beside = [o for o in others if o.bounds[0] < right and o.bounds[2] > left and o is not line]
    above = [o for o in beside if o.bounds[3] <= top + 0.3 * tall and top - o.bounds[3] < 2 * tall]
    below = [
        o for o in beside if o.bounds[1] >= bottom - 0.3 * tall and o.bounds[1] - bottom < 2 * tall
    ]
    l, t, r, b = loose  # noqa: E741
    if above:
        near = max(above, key=lambda o: o.bounds[3])
        return l, min(t, (near.bounds[1] + near.bounds[3]) / 2), r, b
    if below:
        near = min(below, key=lambda o: o.bounds[1])
        return l, t, r, max(b, (near.bounds[1] + near.bounds[3]) / 2)
    return l, t - 0.6 * tall, r, b


def upright_box(
    page: str,
    line: PageLine,
    kind: str,
    box: tuple[float, float, float, float],
    size: tuple[int, int],
) -> Box:
    width, height = size
    left, top = max(0.0, box[0]), max(0.0, box[1])
    right, bottom = min(float(width), box[2]), min(float(height), box[3])
    value = {
        "x": left / width * 100,
        "y": top / height * 100,
        "width": (right - left) / width * 100,
        "height": (bottom - top) / height * 100,
        "rotation": 0,
    }
    outline = ((left, top), (right, top), (right, bottom), (left, bottom))
    return Box(page, line, kind, _region(value, "rectangle", size), outline)


def _rotated(page: str, line: PageLine, angle: float, size: tuple[int, int]) -> Box:
    """A rectangle turned `angle` degrees clockwise, loose around the line."""
    width, height = size
    radians = math.radians(angle)
    along, across = (math.cos(radians), math.sin(radians)), (-math.sin(radians), math.cos(radians))
    cx = sum(x for x, _ in line.corners) / 4
    cy = sum(y for _, y in line.corners) / 4
    us = [(x - cx) * along[0] + (y - cy) * along[1] for x, y in line.corners]
    vs = [(x - cx) * across[0] + (y - cy) * across[1] for x, y in line.corners]
    wide, tall = max(us) - min(us), max(vs) - min(vs)
    u0, u1 = min(us) - LOOSE_X * wide, max(us) + LOOSE_X * wide
    v0, v1 = min(vs) - LOOSE_Y * tall, max(vs) + LOOSE_Y * tall
    outline = tuple(
        (cx + u * along[0] + v * across[0], cy + u * along[1] + v * across[1])
        for u, v in ((u0, v0), (u1, v0), (u1, v1), (u0, v1))
    )
    x, y = outline[0]
    value = {
        "x": x / width * 100,
        "y": y / height * 100,
        "width": (u1 - u0) / width * 100,
        "height": (v1 - v0) / height * 100,
        "rotation": angle % 360,
    }
    return Box(page, line, "rotated", _region(value, "rectangle", size), outline)


def _region(value: dict[str, Any], kind: str, size: tuple[int, int]) -> dict[str, Any]:
    """One drawn region as Label Studio's labeling UI sends it in params.context."""
    width, height = size
    return {
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": value,
        "id": "harness-box",
        "from_name": "bbox" if kind == "rectangle" else "poly",
        "to_name": "image",
        "type": kind,
        "origin": "manual",
    }


def _straightened(rgb: Image.Image, outline: Sequence[tuple[float, float]]) -> Image.Image:
    """The turned rectangle's pixels, upright (what a user's editor saves of it)."""
    (x0, y0), (x1, y1), _, (x3, y3) = outline
    wide, tall = math.hypot(x1 - x0, y1 - y0), math.hypot(x3 - x0, y3 - y0)
    along = ((x1 - x0) / wide, (y1 - y0) / wide)
    across = ((x3 - x0) / tall, (y3 - y0) / tall)
    to_page = np.array([[along[0], across[0], x0], [along[1], across[1], y0]], dtype=np.float64)
    size = (max(1, round(wide)), max(1, round(tall)))
    upright = cv2.warpAffine(
        np.asarray(rgb), to_page, size,
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip
    return Image.fromarray(upright)


def all_boxes(
    pages: dict[str, Path], readtext: Callable[[Path], list[TextLine]], every: int = 1
) -> list[Box]:
    """Boxes of every kind around every `every`th confident line of each page."""
    boxes = []
    for name, path in pages.items():
        with Image.open(path) as image:
            size = image.size
        lines = page_lines(readtext(path))
        lines.sort(key=lambda line: (line.bounds[1], line.bounds[0]))
        for turn, line in enumerate(lines[::every]):
            boxes.extend(draw_boxes(name, line, lines, size, turn))
    return boxes


def measure(
    boxes: Sequence[Box],
    pages: dict[str, Path],
    folder: Path,
    readtext: Callable[[Path], list[TextLine]],
    service: Callable[[str, dict[str, Any]], tuple[str, float]],
) -> list[Case]:
    """Each box read by the service (`service(page name, region) -> (text, seconds)`) and
    by `readtext` on its crop saved as a PNG file in `folder`."""
    cases = []
    opened: dict[str, Image.Image] = {}
    for number, box in enumerate(boxes):
        if box.page not in opened:
            opened[box.page] = Image.open(pages[box.page])
        saved = folder / f"box-{number}.png"
        box.crop(opened[box.page]).save(saved)
        text, seconds = service(box.page, box.region)
        cases.append(Case(box, text, reading_order(readtext(saved)), seconds))
    return cases


def report(cases: Sequence[Case], worst: int = 5) -> str:
    """Mean and worst-box CER of both paths, and the `worst` boxes the service lost most on."""
    service = [case.service_cer for case in cases]
    theirs = [case.readtext_cer for case in cases]
    lines = [
        f"{len(cases)} boxes; CER against the full-page text: "
        f"service mean {statistics.mean(service):.3f} worst {max(service):.3f}; "
        f"readtext on the crop mean {statistics.mean(theirs):.3f} worst {max(theirs):.3f}; "
        f"largest loss {max(case.loss for case in cases):+.3f}",
        f"worst {worst} boxes (service CER - readtext CER):",
    ]
    for case in sorted(cases, key=lambda case: -case.loss)[:worst]:
        lines.append(
            f"  {case.loss:+.3f} {case.box.page} {case.box.kind:8} line {case.box.line.text!r}: "
            f"service {case.service!r}, readtext on the crop {case.readtext!r}"
        )
    return "\n".join(lines)
