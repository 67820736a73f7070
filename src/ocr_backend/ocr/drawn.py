"""The text in a region a user drew: what `readtext` finds in it, less its neighbours' pieces.

EasyOCR's own `readtext` on the region's pixels saved as a file is what a
user would compare the service against, so the region is read the same way:
detection inside the crop, then recognition of what detection found. Never
a guess of our own about where the ink is: hand-made rules that chose to
skip detection read framed street signs as `Eeawn atoonz _` where
`readtext` on the crop read `Palais du LOUVRE`.

On top of that, what detection found mostly outside the drawn area (in the
crop's margin: a neighbouring line the box's edge cut through, replicated
outwards) is left out. Small text (detected at full size) is read from the
drawn area alone, as readtext reads the crop's file, on the rows of text
the padded crop kept: a few pixels' shift changes how tiny text is found.
"""

from __future__ import annotations

from dataclasses import replace

from ..images.crop import Area, Crop
from ..images.planes import as_planes
from .lines import Point, TextLine
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
    found = reader.detect(planes, scale)
    kept, least = _kept(found, crop.drawn)
    if scale < 1.0 and least < CLEAR:
        found = reader.detect(planes)
        kept, _ = _kept(found, crop.drawn)
    top, bottom, left, right = crop.drawn
    area = planes[top:bottom, left:right]
    if scale == 1.0:
        # Small text: what readtext finds in the drawn area alone (the pixels of the crop
        # saved as a file) is read as readtext reads it, less the neighbours' pieces: what
        # detection in the padded crop did not keep. Tiny text is found and cut otherwise
        # when the margin shifts it by a few pixels: `149]` for `149] ,`, `[461,` for
        # `[461`, `31S` for `315` (10-pixel characters on street_signs.png).
        own = _own(reader.detect(area), kept, crop.drawn)
        if own.horizontal or own.free:
            return [_moved(line, left, top) for line in reader.recognise(area, own)]
    if kept.horizontal or kept.free:
        return reader.recognise(planes, kept)
    if scale < 1.0:
        # Nothing found in the padded crop: detect in the drawn area alone, as readtext does
        # on the crop saved as a file. The replicated margin that lets detection find a
        # letter at the box's edge can smear a loose box's text outwards.
        bare = reader.detect(area, scale)  # at the first pass's scale: a blank box stays cheap
        if bare.horizontal or bare.free:
            return [_moved(line, left, top) for line in reader.recognise(area, bare)]
    # Nothing detection finds: readtext reads nothing here either. A box drawn around one
    # small character is read whole, where the reading is confident.
    whole = Detected(horizontal=[[left, right, top, bottom]], free=[])
    return [line for line in reader.recognise(planes, whole) if line.score >= WHOLE_SCORE]


def _own(bare: Detected, kept: Detected, drawn: Area) -> Detected:
    """What detection found in the drawn area alone (its own pixels) on the rows of text
    that detection in the padded crop kept: the rest is the neighbours' pieces above or
    below, which the padded crop shows reaching out of the drawn area. All of it when the
    padded crop kept nothing.

    By rows, not by boxes: the padded crop may find only part of a tiny line (`666_` of
    `.9718757271766663)`), or not the comma after it, where the drawn area alone finds all.
    A box is on a row when half of the lower of the two lies in the other: detection in
    the drawn area alone can find a word as a box reaching to the area's edges, twice its
    row's height (a polygon around `[292`, which the padded crop read as `292`).
    """
    if not (kept.horizontal or kept.free):
        return bare
    rows = [(top - drawn.top, bottom - drawn.top) for _, _, top, bottom in _boxes(kept)]

    def ours(box: tuple[float, float, float, float]) -> bool:
        _, _, top, bottom = box
        height = bottom - top
        return height > 0 and any(
            min(bottom, row_bottom) - max(top, row_top)
            >= INSIDE * min(height, row_bottom - row_top)
            for row_top, row_bottom in rows
        )

    return Detected(
        horizontal=[box for box in bare.horizontal if ours(_upright(box))],
        free=[box for box in bare.free if ours(_bounds(box))],
    )


def _boxes(found: Detected) -> list[tuple[float, float, float, float]]:
    """Every box found as (left, right, top, bottom)."""
    return [_upright(box) for box in found.horizontal] + [_bounds(box) for box in found.free]


def _moved(line: TextLine, left: int, top: int) -> TextLine:
    """A line read in the drawn area alone, in the crop's pixels."""

    def at(point: Point) -> Point:
        return point[0] + left, point[1] + top

    first, second, third, fourth = line.polygon
    return replace(line, polygon=(at(first), at(second), at(third), at(fourth)))


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
