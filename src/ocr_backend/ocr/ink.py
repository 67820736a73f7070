"""Where a drawn crop holds ink, whether it is one line of text, and where that line is.

Pure numpy. Ink is what differs clearly from the crop's paper in the grey
picture the recogniser reads, darker or lighter: black print on white and
white letters on a blue sign alike. A box drawn by hand often cuts into the
lines and words around the one it is drawn for; what the box's edge cuts
through, and is small beside the line, is a neighbour's piece, and is left
out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..images.crop import Area

INK_CONTRAST = 48  # grey levels between paper and ink; JPEG noise stays below it
FAINT_INK = 24  # the least contrast still ink, for faint text that has nothing stronger
# A piece of ink cut by the region's edge and under this share of the line's height is a
# neighbouring line the box cut into, not a line of its own.
CUT_NEIGHBOUR = 0.75
# A gap between pieces of a line wider than this many line heights parts two words
# (EasyOCR joins boxes closer than half a height; its boxes are wider than their ink).
WORD_GAP = 0.8
LETTER_GAP = 0.2  # of the line's height: letters of a word are closer than this
RULE = 0.9  # of the drawn width or height, inked: a rule, not text
SPECK = 0.5  # of the line's height: a piece apart from the words and narrower is no word
MARGIN = 0.2  # of the line's height around its ink, as CRAFT's boxes have: the recogniser
# read `makseq` as `Marsed` in a box tight on the ink, right in one this much wider.


def ink_mask(grey: np.ndarray) -> np.ndarray:
    """Where the grey crop differs clearly from its paper (its median shade), either way.

    Clearly: by INK_CONTRAST, or by half the crop's strongest contrast when
    that is less (small grey text), but never by less than FAINT_INK.
    """
    if grey.size == 0:
        return np.zeros(grey.shape[:2], dtype=bool)
    shades = grey.astype(np.int16)
    contrast = np.abs(shades - int(np.median(shades)))
    strongest = float(np.percentile(contrast, 99.5))
    return contrast > max(FAINT_INK, min(INK_CONTRAST, strongest / 2))


def one_line(ink: np.ndarray, drawn: Area) -> slice | None:
    """The rows of the crop's one line of text; None when it holds none or several.

    One band of inked rows between blank ones, wider than tall as a line is,
    beside no other band but neighbours' pieces cut by the drawn area's top
    or bottom. Two lines that touch with no blank row between them would
    pass as one; the width check catches most such blocks, and ordinary line
    spacing leaves a gap.
    """
    width = ink.shape[1]
    ink = ink & ~_rules(ink, drawn)
    inked = ink.sum(axis=1) >= max(2, width * 0.003)  # a stray noise pixel is no ink
    bands = [band for band in _runs(inked) if band[1] - band[0] >= 2]  # nor is a speck
    if not bands:
        return None
    line = max(bands, key=lambda band: band[1] - band[0])
    tall = line[1] - line[0]
    for band in bands:
        if band != line and not _cut(band, tall, drawn.top, drawn.bottom):
            return None
    if tall * 2 > width or _bar_at_an_end(ink[line[0] : line[1]], drawn):
        return None
    return slice(*line)


def _rules(ink: np.ndarray, drawn: Area) -> np.ndarray:
    """Where the crop holds rules: rows inked across nine tenths of the drawn width,
    columns down nine tenths of its height (a frame's or a table's lines), which would
    join lines into one band, or make a band of a frame. A box drawn tight on one line
    keeps its letters: their rows are never inked that fully."""
    rows = slice(max(0, drawn.top), max(0, drawn.bottom))
    columns = slice(max(0, drawn.left), max(0, drawn.right))
    inside = ink[rows, columns]
    if inside.size == 0:
        return np.zeros_like(ink)
    rule = np.zeros_like(ink)
    rule[rows, columns] |= (inside.mean(axis=1) > RULE)[:, None]
    rule[rows, columns] |= (inside.mean(axis=0) > RULE)[None, :]
    return rule


def is_one_line(ink: np.ndarray) -> bool:
    """Whether the crop holds exactly one line of text and nothing else."""
    return one_line(ink, Area(-2, ink.shape[0] + 2, -2, ink.shape[1] + 2)) is not None


def line_box(ink: np.ndarray, rows: slice, drawn: Area) -> tuple[int, int, int, int]:
    """The box of the line in `rows`, as detection would draw it: [left, right, top, bottom].

    Rules (ink running far above and below the line), pieces at the drawn
    area's left or right edge, apart from the rest by a word gap and
    narrower than the line is tall (cut neighbours), and pieces apart and
    narrower than half its height (specks) are left out.
    """
    line = ink[rows]
    tall = line.shape[0]
    # Columns inked far above and below the line hold a rule or a picture's edge, not text.
    rule: np.ndarray = ink.sum(axis=0) > 2 * tall
    inked = np.asarray(line.any(axis=0))
    pieces = _slivers_cut(line, _runs(inked & ~rule) or _runs(inked), drawn)
    # A solid block first or last (a label's colour chip, a checkbox) is no letter.
    while len(pieces) > 1 and _solid(line, pieces[0]) and pieces[1][0] - pieces[0][1] >= 2:
        pieces = pieces[1:]
    while len(pieces) > 1 and _solid(line, pieces[-1]) and pieces[-1][0] - pieces[-2][1] >= 2:
        pieces = pieces[:-1]
    words = [pieces[0]]
    for start, end in pieces[1:]:
        if start - words[-1][1] > WORD_GAP * tall:
            words.append((start, end))
        else:
            words[-1] = (words[-1][0], end)
    if len(words) > 1 and _cut(words[0], tall, drawn.left, 1 << 30):
        words = words[1:]
    if len(words) > 1 and _cut(words[-1], tall, -1, drawn.right):
        words = words[:-1]
    # A speck apart from the words (a lone comma, a rule) is too small for EasyOCR's
    # detection to keep (its min_size); the recogniser would read it as `,` or `|`.
    words = [word for word in words if not _speck(word, tall)] or words
    columns = slice(words[0][0], words[-1][1])
    inked_rows = np.flatnonzero(line[:, columns].any(axis=1))
    top, bottom = (rows.start or 0) + inked_rows[0], (rows.start or 0) + inked_rows[-1] + 1
    margin = int(MARGIN * (bottom - top)) + 1
    height, width = ink.shape
    return (
        int(max(0, columns.start - margin)),
        int(min(width, columns.stop + margin)),
        int(max(0, top - margin)),
        int(min(height, bottom + margin)),
    )


def cut_neighbours(boxes: Sequence[Sequence[float]], drawn: Area) -> list[bool]:
    """Which detected boxes ([left, right, top, bottom]) are neighbours the drawn edge cut.

    When some line lies clear of every edge, the box was drawn loosely
    around it: a line that reaches an edge, above or below all the clear
    ones, is a neighbour the box cut into. Whatever the box, a line that
    reaches its top or bottom and is under CUT_NEIGHBOUR of the tallest
    line's height is a cut piece. Never all of them.
    """
    if len(boxes) < 2:
        return [False] * len(boxes)
    reaches = [_reaches_edge(box, drawn) for box in boxes]
    clear = [box for box, touching in zip(boxes, reaches, strict=True) if not touching]
    tallest = max(box[3] - box[2] for box in boxes)
    cut = []
    for box, touching in zip(boxes, reaches, strict=True):
        centre = (box[2] + box[3]) / 2
        outside = bool(clear) and all(centre < c[2] or centre > c[3] for c in clear)
        short = box[3] - box[2] < CUT_NEIGHBOUR * tallest
        at_top_or_bottom = box[2] <= drawn.top + 1 or box[3] >= drawn.bottom - 1
        cut.append(touching and outside or short and at_top_or_bottom)
    return [False] * len(boxes) if all(cut) else cut


def _reaches_edge(box: Sequence[float], drawn: Area) -> bool:
    left, right, top, bottom = box
    return (
        left <= drawn.left + 1
        or right >= drawn.right - 1
        or top <= drawn.top + 1
        or bottom >= drawn.bottom - 1
    )


def _slivers_cut(
    line: np.ndarray, pieces: list[tuple[int, int]], drawn: Area
) -> list[tuple[int, int]]:
    """The pieces of a line but what the drawn area's left or right edge cut through of
    what lay beside the box: apart from the next piece by more than letters are, a
    filled bar (a label's colour bar, `| Opossum`) at either end, or a dot low in the
    line at its start, where no line starts with a comma or a full stop (the recogniser
    read one as the 7 of `70.82`). A bracket or the comma that ends a line stays."""
    tall = line.shape[0]
    apart = max(2, LETTER_GAP * tall)
    while (
        len(pieces) > 1
        and pieces[0][0] <= drawn.left + 1
        and pieces[1][0] - pieces[0][1] >= apart
        and (_filled(line, pieces[0]) or _low_dot(line, pieces[0]))
    ):
        pieces = pieces[1:]
    while (
        len(pieces) > 1
        and pieces[-1][1] >= drawn.right - 1
        and pieces[-1][0] - pieces[-2][1] >= apart
        and _filled(line, pieces[-1])
    ):
        pieces = pieces[:-1]
    return pieces


def _low_dot(line: np.ndarray, piece: tuple[int, int]) -> bool:
    """Whether a piece is a speck wholly in the line's lower half: a comma, a full stop."""
    tall = line.shape[0]
    inked_rows = np.flatnonzero(line[:, piece[0] : piece[1]].any(axis=1))
    return _speck(piece, tall) and len(inked_rows) > 0 and inked_rows[0] >= tall / 2


def _speck(piece: tuple[int, int], tall: int) -> bool:
    return piece[1] - piece[0] < SPECK * tall


def _bar_at_an_end(line: np.ndarray, drawn: Area) -> bool:
    """Whether the line starts or ends with a narrow filled bar apart from the rest.

    A label's colour bar before its name (`| Car` in Label Studio's own
    screenshot) and a capital I (INVOICE) look alike to ink; detection
    tells them apart, so such a line is not read as one line whole.
    """
    pieces = _slivers_cut(line, _runs(np.asarray(line.any(axis=0))), drawn)
    if len(pieces) < 2:
        return False
    first, last = pieces[0], pieces[-1]
    return (_filled(line, first) and pieces[1][0] - first[1] >= 2) or (
        _filled(line, last) and last[0] - pieces[-2][1] >= 2
    )


def _filled(line: np.ndarray, piece: tuple[int, int]) -> bool:
    """Whether ink fills nine tenths of a piece's columns, over most of the line's height."""
    inked_rows = np.flatnonzero(line[:, piece[0] : piece[1]].any(axis=1))
    if len(inked_rows) < 0.6 * line.shape[0]:
        return False
    block = line[inked_rows[0] : inked_rows[-1] + 1, piece[0] : piece[1]]
    return float(block.mean()) > 0.9


def _solid(line: np.ndarray, piece: tuple[int, int]) -> bool:
    """Whether a piece of the line is a filled block: ink over nine tenths of it, and at
    least 0.4 of the line's height wide, as a colour chip or checkbox is. A letter's stem
    is as filled but narrower: a capital I first on a line is read, not dropped."""
    wide = piece[1] - piece[0] >= max(2, 0.4 * line.shape[0])
    return wide and float(line[:, piece[0] : piece[1]].mean()) > 0.9


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """The runs of True in a row of flags, as (start, end) with end exclusive."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.astype(np.int8), [0]))))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _cut(piece: tuple[int, int], tall: int, start: int, end: int) -> bool:
    """Whether a piece touches the edge at `start` or `end` and is smaller than the line."""
    at_edge = piece[0] <= start + 1 or piece[1] >= end - 1
    return at_edge and piece[1] - piece[0] < CUT_NEIGHBOUR * tall
