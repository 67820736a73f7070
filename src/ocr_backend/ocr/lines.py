"""What the OCR core returns: lines of text with their corners. Imports nothing heavy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class TextLine:
    """One line of text EasyOCR found: four corners in pixels, clockwise from top-left."""

    polygon: tuple[Point, Point, Point, Point]
    text: str
    score: float


def to_text_line(box: Any, text: Any, score: Any) -> TextLine:
    """One of EasyOCR's `(box, text, score)` triples, as plain floats and str."""
    corners = tuple((float(x), float(y)) for x, y in box)
    return TextLine(polygon=corners, text=str(text), score=float(score))  # type: ignore[arg-type]


def mean_score(lines: Sequence[TextLine]) -> float:
    return sum(line.score for line in lines) / len(lines) if lines else 0.0
