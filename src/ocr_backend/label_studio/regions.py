"""Interactive pre-annotation: the regions a user has just drawn, and their answer items.

Label Studio sends `/predict` with `params.context.result` holding what the
user drew. The answer keeps each of those regions as sent (id, geometry,
labels) and adds its `textarea` item with the text read inside it; nothing
else on the page is returned. Only areas are read: rectangles (rotated or
not) and polygons, with or without labels. Pure functions: the route finds
the regions, and `Predictor.read_drawn` reads them.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..ocr.lines import TextLine
from .config import OcrTargets

AREA_TYPES = frozenset({"rectangle", "rectanglelabels", "polygon", "polygonlabels", "labels"})
GEOMETRY_KEYS = ("x", "y", "width", "height", "rotation", "points", "closed")
# What every item of one region repeats (docs/label-studio.md, "Region results");
# `item_index` is the page of a multi-page task the region was drawn on.
SHARED_KEYS = ("to_name", "original_width", "original_height", "image_rotation", "item_index")


def new_region_id() -> str:
    """Label Studio's own ids are 10 url-safe characters."""
    return secrets.token_urlsafe(8)[:10]


@dataclass(frozen=True, slots=True)
class DrawnRegion:
    """One region the user drew: its items as sent, and the geometry they share."""

    id: str
    items: tuple[dict[str, Any], ...]
    geometry: dict[str, Any]
    shared: dict[str, Any]
    item_index: int | None = None  # its page, in a multi-page task (from 0)


def drawn_regions(context: Mapping[str, Any] | None) -> list[DrawnRegion] | None:
    """The areas in an interactive context; None when the request is not interactive.

    An interactive context with no area in it (a keypoint, say) gives an empty list.
    """
    if not context or not isinstance(context.get("result"), list) or not context["result"]:
        return None
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in context["result"]:
        if isinstance(item, dict) and item.get("type") in AREA_TYPES:
            groups.setdefault(str(item.get("id") or new_region_id()), []).append(item)
    found = []
    for region_id, items in groups.items():
        shaped = next((i for i in items if _geometry(i.get("value"))), None)
        if shaped is None:
            continue  # a label without a shape says nothing about where to read
        page = shaped.get("item_index")
        if page is not None and not _is_page(page):
            continue  # a page that is not a page number says nothing about where to read
        found.append(
            DrawnRegion(
                id=region_id,
                items=tuple({**item, "id": region_id} for item in items),
                geometry=_geometry(shaped["value"]),
                shared={key: shaped[key] for key in SHARED_KEYS if key in shaped},
                item_index=page,
            )
        )
    return found


def _geometry(value: Any) -> dict[str, Any]:
    """The shape in a result value, or {} when it holds none that can be read."""
    if not isinstance(value, dict):
        return {}
    if "points" in value:
        points = value["points"]
        if not isinstance(points, list) or not all(
            isinstance(p, list | tuple) and len(p) == 2 and all(_is_number(c) for c in p)
            for p in points
        ):
            return {}
    elif not all(_is_number(value.get(key)) for key in ("x", "y", "width", "height")):
        return {}
    if not _is_number(value.get("rotation") or 0):
        return {}
    return {key: value[key] for key in GEOMETRY_KEYS if key in value}


def _is_page(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def reading_order(lines: Sequence[TextLine]) -> str:
    """Lines top to bottom joined by newlines; pieces of one line left to right, by spaces.

    EasyOCR may return one line as several boxes; a box belongs to a line
    when its vertical centre lies within that line's first box.
    """
    rows: list[list[TextLine]] = []
    for line in sorted(lines, key=lambda line: _centre_y(line)):
        if rows and _top(rows[-1][0]) <= _centre_y(line) <= _bottom(rows[-1][0]):
            rows[-1].append(line)
        else:
            rows.append([line])
    return "\n".join(
        " ".join(piece.text for piece in sorted(row, key=_left) if piece.text.strip())
        for row in rows
    ).strip()


def _centre_y(line: TextLine) -> float:
    return sum(y for _, y in line.polygon) / 4


def _top(line: TextLine) -> float:
    return min(y for _, y in line.polygon)


def _bottom(line: TextLine) -> float:
    return max(y for _, y in line.polygon)


def _left(line: TextLine) -> float:
    return min(x for x, _ in line.polygon)


def region_items(region: DrawnRegion, targets: OcrTargets, text: str) -> list[dict[str, Any]]:
    """The user's items as sent, and the region's text item."""
    textarea = {
        "id": region.id,
        "from_name": targets.textarea,
        "to_name": targets.image,
        **region.shared,
        "type": "textarea",
        "value": {**region.geometry, "text": [text]},
    }
    return [*region.items, textarea]
