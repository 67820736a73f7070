"""Reading a region a user drew: the strategy every engine shares, over any TextReader.

A crop that holds one line of text is recognised whole: detection would
cost several times what recognition does (bench/interactive.py). Anything
else goes through detection, which splits it into lines; when that finds
nothing in a crop that is not blank (a lone character under its size
limit), the crop is recognised whole after all. Either way, pieces of
neighbouring lines the box's edge cut through are left out (ocr/ink.py).
"""

from __future__ import annotations

import numpy as np

from ..images.crop import Crop
from ..images.planes import as_planes, grey
from .ink import cut_neighbours, ink_mask, line_box, one_line
from .lines import TextLine
from .text_reader import Detected, TextReader, read_page


def read_drawn(reader: TextReader, crop: Crop) -> list[TextLine]:
    """The text in a region a user drew (lines in crop pixels), blocking."""
    planes = as_planes(crop.image)
    ink = ink_mask(grey(planes))
    if not ink.any():
        return []
    drawn = crop.drawn
    rows = one_line(ink, drawn)
    if rows is not None:
        return _recognise_whole(reader, planes, line_box(ink, rows, drawn))
    lines = read_page(reader, planes)
    if not lines:
        return _recognise_whole(reader, planes, line_box(ink, slice(None), drawn))
    cut = cut_neighbours([_bounds(line) for line in lines], drawn)
    return [line for line, neighbour in zip(lines, cut, strict=True) if not neighbour]


def _recognise_whole(
    reader: TextReader, planes: np.ndarray, box: tuple[int, int, int, int]
) -> list[TextLine]:
    """What is in `box` ([left, right, top, bottom]), recognised as one line."""
    return reader.recognise(planes, Detected(horizontal=[list(box)], free=[]))


def _bounds(line: TextLine) -> tuple[float, float, float, float]:
    xs, ys = [x for x, _ in line.polygon], [y for _, y in line.polygon]
    return min(xs), max(xs), min(ys), max(ys)
