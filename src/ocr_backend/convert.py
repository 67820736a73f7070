"""TextLines in pixels -> Label Studio result items in percent, and one page's (or one
document's pages') lines -> one prediction. Pure functions, no I/O."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from .label_studio.config import Geometry, OcrTargets
from .label_studio.regions import new_region_id
from .label_studio.schemas import Prediction
from .ocr.lines import Point, TextLine, mean_score

AXIS_TOLERANCE_PX = 1.0


def page_prediction(
    pages: Sequence[tuple[Sequence[TextLine], int, int]],
    targets: OcrTargets,
    *,
    score_threshold: float,
    model_version: str,
) -> Prediction:
    """The prediction for a task's page, or a multi-page task's pages (lines, width, height).

    Only lines read at `score_threshold` or above become regions, and the
    score is their mean. On a multi-page task (`<Image valueList=...>`) each
    region names its page with `item_index`; /predict and `pdf-to-tasks`
    both answer through here, so a document's prediction is the same either way.
    """
    result: list[dict[str, Any]] = []
    kept_lines: list[TextLine] = []
    for index, (lines, width, height) in enumerate(pages):
        kept = [line for line in lines if line.score >= score_threshold]
        kept_lines.extend(kept)
        page = index if targets.multi_page else None
        result.extend(lines_to_regions(kept, targets, width, height, item_index=page))
    return Prediction(result=result, score=mean_score(kept_lines), model_version=model_version)


def lines_to_regions(
    lines: Sequence[TextLine],
    targets: OcrTargets,
    width: int,
    height: int,
    *,
    region_id: Callable[[], str] = new_region_id,
    item_index: int | None = None,
) -> list[dict[str, Any]]:
    """One region per line: geometry, label and text items that share one id.

    `item_index`: the page (from 0) of a multi-page task these lines are on;
    `width` and `height` are then that page's.
    """
    items: list[dict[str, Any]] = []
    for line in lines:
        items.extend(
            line_to_region(line, targets, width, height, region_id(), item_index=item_index)
        )
    return items


def line_to_region(
    line: TextLine,
    targets: OcrTargets,
    width: int,
    height: int,
    region_id: str,
    *,
    item_index: int | None = None,
) -> list[dict[str, Any]]:
    geometry, value = _geometry_for(line.polygon, targets, width, height)
    common: dict[str, Any] = {
        "id": region_id,
        "to_name": targets.image,
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "score": line.score,
    }
    if item_index is not None:
        # Label Studio shows a region on the page its item_index names, sized by that
        # page's original_width/height (every item of the region carries both).
        common["item_index"] = item_index
    label_key = geometry.type if geometry.type.endswith("labels") else None
    shape = {**value, label_key: [geometry.label]} if label_key and geometry.label else value
    items = [{**common, "from_name": geometry.name, "type": geometry.type, "value": shape}]
    if label_key is None and targets.labels and targets.label:
        items.append(
            {
                **common,
                "from_name": targets.labels,
                "type": "labels",
                "value": {**value, "labels": [targets.label]},
            }
        )
    items.append(
        {**common, "from_name": targets.textarea, "type": "textarea",
         "value": {**value, "text": [line.text]}}
    )  # fmt: skip
    return items


def _geometry_for(
    polygon: Sequence[Point], targets: OcrTargets, width: int, height: int
) -> tuple[Geometry, dict[str, Any]]:
    """A rectangle for an upright box, a polygon for a slanted one, or the only tag there is."""
    upright = is_axis_aligned(polygon)
    if targets.rectangle and (upright or targets.polygon is None):
        return targets.rectangle, rectangle_value(polygon, width, height)
    assert targets.polygon is not None  # labeling guarantees one of the two
    return targets.polygon, polygon_value(polygon, width, height)


def is_axis_aligned(polygon: Sequence[Point]) -> bool:
    xs = sorted(x for x, _ in polygon)
    ys = sorted(y for _, y in polygon)
    # An upright box has two distinct x values and two distinct y values.
    return (
        xs[1] - xs[0] <= AXIS_TOLERANCE_PX
        and xs[3] - xs[2] <= AXIS_TOLERANCE_PX
        and ys[1] - ys[0] <= AXIS_TOLERANCE_PX
        and ys[3] - ys[2] <= AXIS_TOLERANCE_PX
    )


def polygon_value(polygon: Sequence[Point], width: int, height: int) -> dict[str, Any]:
    return {"points": [[_pct(x, width), _pct(y, height)] for x, y in polygon], "closed": True}


def rectangle_value(polygon: Sequence[Point], width: int, height: int) -> dict[str, Any]:
    """Label Studio's rectangle: top-left corner, size, and a clockwise rotation about that corner.

    For a slanted box the long side runs along the text, left to right.
    """
    if is_axis_aligned(polygon):
        left, right = _span([x for x, _ in polygon], width)
        top, bottom = _span([y for _, y in polygon], height)
        return {
            "x": left / width * 100,
            "y": top / height * 100,
            "width": (right - left) / width * 100,
            "height": (bottom - top) / height * 100,
            "rotation": 0,
        }
    corner, along, across = _oriented_edges(polygon)
    angle = math.degrees(math.atan2(along[1], along[0])) % 360
    return {
        "x": _pct(corner[0], width),
        "y": _pct(corner[1], height),
        "width": math.hypot(*along) / width * 100,
        "height": math.hypot(*across) / height * 100,
        "rotation": angle,
    }


def _oriented_edges(polygon: Sequence[Point]) -> tuple[Point, Point, Point]:
    """The corner where the text starts, the edge along the text and the edge across it."""
    points = _clockwise(polygon)
    best = None
    for start in range(4):
        a, b, c = points[start], points[(start + 1) % 4], points[(start + 2) % 4]
        along = (b[0] - a[0], b[1] - a[1])
        across = (c[0] - b[0], c[1] - b[1])
        key = (math.hypot(*along) >= math.hypot(*across), along[0] > 0)
        if best is None or key > best[0]:
            best = (key, a, along, across)
    assert best is not None
    return best[1], best[2], best[3]


def _clockwise(polygon: Sequence[Point]) -> list[Point]:
    """Corners in clockwise order on screen (y grows downwards)."""
    cx = sum(x for x, _ in polygon) / len(polygon)
    cy = sum(y for _, y in polygon) / len(polygon)
    return sorted(polygon, key=lambda p: math.atan2(p[1] - cy, p[0] - cx))


def _span(values: Sequence[float], size: int) -> tuple[float, float]:
    """Lowest and highest coordinate, clamped to the image."""
    return max(min(values), 0.0), min(max(values), float(size))


def _pct(value: float, size: int) -> float:
    """Percent of the image side, clamped to [0, 100]: never drop a point."""
    return min(max(value / size * 100, 0.0), 100.0)
