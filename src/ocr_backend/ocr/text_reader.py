"""One loaded detector + recogniser, blocking, used from one thread (prototype of the seam)."""

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
    """A loaded detector + recogniser (EasyOCR today), blocking."""

    def detect(self, planes: np.ndarray) -> Detected: ...

    def recognise(self, planes: np.ndarray, found: Detected) -> list[TextLine]: ...


def read_page(reader: TextReader, planes: np.ndarray) -> list[TextLine]:
    """What readtext does: detect, then recognise what was found."""
    return reader.recognise(planes, reader.detect(planes))
