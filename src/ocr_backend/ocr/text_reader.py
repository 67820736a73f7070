"""What every engine reads with: one loaded detector and recogniser, blocking, one thread.

EasyOCR is the one reader today (ocr/easyocr_reader.py); the engines
(ocr/local.py, ocr/cluster.py) and the drawn-region strategy (ocr/drawn.py)
know only this interface, so a reader with other weights or another
precision plugs in without them changing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .lines import TextLine


@dataclass(frozen=True)
class Detected:
    """What detection found, in EasyOCR's two lists."""

    horizontal: list[list[int]]  # upright boxes [left, right, top, bottom]
    free: list[list[list[float]]]  # other boxes: four [x, y] corners


class TextReader(Protocol):
    """A loaded detector + recogniser, blocking, used from the thread that built it.

    `planes` is images/planes.py's layout (colour + grey), or plain RGB.
    """

    def detect(self, planes: np.ndarray, scale: float = 1.0) -> Detected:
        """Where the text is: detection on the picture resized by `scale` (1: as it is),
        its boxes in the picture's own pixels."""
        ...

    def recognise(self, planes: np.ndarray, found: Detected) -> list[TextLine]:
        """The text in each box found; texts trimmed, empty ones left out."""
        ...


def read_page(reader: TextReader, planes: np.ndarray) -> list[TextLine]:
    """What `readtext` does: detect, then recognise what was found."""
    return reader.recognise(planes, reader.detect(planes))
