"""Where a crop holds ink, and whether it is one line of text. Pure numpy."""

from __future__ import annotations

import numpy as np

INK_CONTRAST = 48  # grey levels between paper and ink; JPEG noise stays below it


def ink_mask(image: np.ndarray) -> np.ndarray:
    """Where the crop differs clearly from its paper (its most common shade)."""
    if image.size == 0:
        return np.zeros(image.shape[:2], dtype=bool)
    grey = image.mean(axis=2) if image.ndim == 3 else image.astype(np.float64)
    return np.abs(grey - np.median(grey)) > INK_CONTRAST


def is_one_line(ink: np.ndarray) -> bool:
    """One band of inked rows between blank ones, and wider than tall, as a line is.

    Two lines that touch with no blank row between them would pass as one; the
    width check catches most such blocks, and ordinary line spacing leaves a gap.
    """
    width = ink.shape[1]
    inked = ink.sum(axis=1) >= max(2, width * 0.003)  # a stray noise pixel is no ink
    edges = np.flatnonzero(np.diff(np.concatenate(([0], inked.astype(np.int8), [0]))))
    heights = edges[1::2] - edges[::2]
    bands = heights[heights >= 2]  # a speck of one row is no line either
    return len(bands) == 1 and bands[0] * 2 <= width


def ink_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    """The ink's bounding box with EasyOCR's own margin: [left, right, top, bottom] in pixels.

    As tight as detection would draw it (readtext's add_margin=0.1).
    """
    height, width = ink.shape
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
    margin = int(0.1 * min(bottom - top, right - left)) + 1
    return (
        int(max(0, left - margin)),
        int(min(width, right + margin)),
        int(max(0, top - margin)),
        int(min(height, bottom + margin)),
    )
