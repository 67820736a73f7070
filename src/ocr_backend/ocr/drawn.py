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

from dataclasses import replace

from ..images.crop import Area, Crop
from ..images.planes import as_planes
from .lines import TextLine
from .text_reader import Detected, TextReader

INSIDE = 0.5  # of a detected box's area in the drawn area: less is a neighbour's piece
# A reading of the whole drawn area, when detection found nothing in it, is kept from this
# score: a lone character under detection's smallest size (a 16-pixel `7`) reads at 0.9 and
# more; a blank box or a frame's edge reads as low-scored noise.
WHOLE_SCORE = 0.5
# Detection costs in proportion to its picture's pixels, and large text needs few of them:
# the drawn area's shorter side is brought down to DETECT_SIDE pixels for detection (what
# it finds is recognised in the crop's own pixels). On the made sign photos' 105 boxes a
# box took a median 466 ms of CPU instead of 1020 ms, and read better (mean CER 0.005
# against 0.016); at 48 pixels small text began to go (a box's CER up to 1.17), at 96 and
# more the saving shrank to a third and less.
DETECT_SIDE = 64
# A box kept from a reduced scale with less than this share of it in the drawn area is a
# close call: the half of a neighbouring line a box cuts through is found or not depending
# on the scale (`CITY LIBRARY` gained `Qnening`), so a close call is settled at full size,
# as readtext settles it. A box's own line lies 0.75 and more inside at the reduced scale.
CLEAR = 0.75


def detection_scale(drawn: Area) -> float:
    """The scale the crop is detected at: the drawn area's shorter side to DETECT_SIDE."""
    shorter = min(drawn.bottom - drawn.top, drawn.right - drawn.left)
    return min(1.0, DETECT_SIDE / shorter) if shorter > 0 else 1.0


def read_drawn(reader: TextReader, crop: Crop) -> list[TextLine]:
    """The text in a region a user drew (lines in crop pixels), blocking."""
    planes = as_planes(crop.image)  # once, not in each step
    scale = detection_scale(crop.drawn)
    kept, least = _kept(reader.detect(planes, scale), crop.drawn)
    if scale < 1.0 and least < CLEAR:
        kept, _ = _kept(reader.detect(planes), crop.drawn)
    if kept.horizontal or kept.free:
        return reader.recognise(planes, kept)
    # Nothing found in the padded crop: detect in the drawn area alone, exactly the pixels
    # readtext gets from the crop saved as a file. The replicated margin that lets detection
    # find a letter at the box's edge smears a small loose box's text outwards: `79],` and
    # `[475` (10-pixel characters) were found in the bare area and not in the padded one.
    top, bottom, left, right = crop.drawn
    area = planes[top:bottom, left:right]
    bare = reader.detect(area, scale)  # at the first pass's scale: a large blank box stays cheap
    if bare.horizontal or bare.free:
        return [_moved(line, left, top) for line in reader.recognise(area, bare)]
    # Nothing detection finds: readtext reads nothing here either. A box drawn around one
    # small character is read whole, where the reading is confident.
    whole = Detected(horizontal=[[left, right, top, bottom]], free=[])
    return [line for line in reader.recognise(planes, whole) if line.score >= WHOLE_SCORE]


def _moved(line: TextLine, left: int, top: int) -> TextLine:
    """A line read in the drawn area alone, in the crop's pixels."""
    polygon = tuple((x + left, y + top) for x, y in line.polygon)
    return replace(line, polygon=polygon)  # type: ignore[arg-type]


def _kept(found: Detected, drawn: Area) -> tuple[Detected, float]:
    """What detection found at least INSIDE in the drawn area, and the least share inside
    of what was kept (1 when nothing was)."""
    horizontal = [(box, _inside(_upright(box), drawn)) for box in found.horizontal]
    free = [(box, _inside(_bounds(box), drawn)) for box in found.free]
    shares = [share for _, share in horizontal + free if share >= INSIDE]
    kept = Detected(
        horizontal=[box for box, share in horizontal if share >= INSIDE],
        free=[box for box, share in free if share >= INSIDE],
    )
    return kept, min(shares, default=1.0)


def _upright(box: list[int]) -> tuple[float, float, float, float]:
    left, right, top, bottom = box
    return left, right, top, bottom


def _bounds(corners: list[list[float]]) -> tuple[float, float, float, float]:
    xs, ys = [x for x, _ in corners], [y for _, y in corners]
    return min(xs), max(xs), min(ys), max(ys)


def _inside(box: tuple[float, float, float, float], drawn: Area) -> float:
    """The share of the box's area in the drawn area (0 for a box of no area)."""
    left, right, top, bottom = box
    area = max(0.0, right - left) * max(0.0, bottom - top)
    if area == 0:
        return 0.0
    wide = max(0.0, min(right, drawn.right) - max(left, drawn.left))
    tall = max(0.0, min(bottom, drawn.bottom) - max(top, drawn.top))
    return wide * tall / area
