"""The text in a region a user drew: what `readtext` finds in it, less its neighbours' pieces.

EasyOCR's own `readtext` on the region's pixels saved as a file is what a
user would compare the service against, so the region is read the same way:
detection inside the crop, then recognition of what detection found. Never
a guess of our own about where the ink is: hand-made rules that chose to
skip detection read framed street signs as `Eeawn atoonz _` where
`readtext` on the crop read `Palais du LOUVRE`.

On top of that, what detection found mostly outside the drawn area (in the
crop's margin: a neighbouring line the box's edge cut through, replicated
outwards) is left out.
"""

from __future__ import annotations

from ..images.crop import Area, Crop
from ..images.planes import as_planes
from .lines import TextLine
from .text_reader import Detected, TextReader

INSIDE = 0.5  # of a detected box's area in the drawn area: less is a neighbour's piece
# A reading of the whole drawn area, when detection found nothing in it, is kept from this
# score: a lone character under detection's smallest size (a 16-pixel `7`) reads at 0.9 and
# more; a blank box or a frame's edge reads as low-scored noise.
WHOLE_SCORE = 0.5


def read_drawn(reader: TextReader, crop: Crop) -> list[TextLine]:
    """The text in a region a user drew (lines in crop pixels), blocking."""
    planes = as_planes(crop.image)  # once, not in each step
    found = reader.detect(planes)
    kept = Detected(
        horizontal=[box for box in found.horizontal if _inside(_upright(box), crop.drawn)],
        free=[box for box in found.free if _inside(_bounds(box), crop.drawn)],
    )
    if kept.horizontal or kept.free:
        return reader.recognise(planes, kept)
    # Nothing detection would keep: readtext reads nothing here either. A box drawn around
    # one small character is read whole, where the reading is confident.
    top, bottom, left, right = crop.drawn
    whole = Detected(horizontal=[[left, right, top, bottom]], free=[])
    return [line for line in reader.recognise(planes, whole) if line.score >= WHOLE_SCORE]


def _upright(box: list[int]) -> tuple[float, float, float, float]:
    left, right, top, bottom = box
    return left, right, top, bottom


def _bounds(corners: list[list[float]]) -> tuple[float, float, float, float]:
    xs, ys = [x for x, _ in corners], [y for _, y in corners]
    return min(xs), max(xs), min(ys), max(ys)


def _inside(box: tuple[float, float, float, float], drawn: Area) -> bool:
    """Whether at least INSIDE of the box's area lies in the drawn area."""
    left, right, top, bottom = box
    area = max(0.0, right - left) * max(0.0, bottom - top)
    if area == 0:
        return False
    wide = max(0.0, min(right, drawn.right) - max(left, drawn.left))
    tall = max(0.0, min(bottom, drawn.bottom) - max(top, drawn.top))
    return wide * tall >= INSIDE * area
