"""Which annotation of a task counts, and the text regions in it (pure functions).

An annotation counts when it was submitted, not cancelled ("Skip" in Label
Studio makes a cancelled one). Where a task has several, the one marked
ground truth wins, else the newest. A region is the result items that share
one `id` (docs/label-studio.md, "Region results"): a rectangle or polygon,
its label, and its `textarea` with the text. A region that cannot teach the
recogniser one line of text is left out, with its reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SHAPE_TYPES = frozenset({"rectangle", "rectanglelabels", "polygon", "polygonlabels"})
# Reasons a region is left out of the export, in the user's words (the manifest lists them).
NO_TEXT = "no_text"  # a shape without a transcription, or an empty one
NO_SHAPE = "no_shape"  # a transcription without a rectangle or polygon to cut
SEVERAL_LINES = (
    "several_lines"  # the recogniser reads one line; a region holding more cannot teach it
)
BAD_PAGE = "bad_page"  # item_index names no page of the task
OFF_IMAGE = "off_image"  # the shape holds no pixels of the image
IMAGE_FAILED = "image_failed"  # the task's image could not be fetched or decoded


@dataclass(frozen=True, slots=True)
class TextRegion:
    """One corrected line: where it is and what it says."""

    id: str
    text: str
    geometry: dict[
        str, Any
    ]  # Label Studio's percent geometry: x, y, width, height, rotation or points
    page: int  # item_index; 0 on a task of one image


@dataclass(frozen=True, slots=True)
class LeftOut:
    """A region the export could not use, and why."""

    task: int
    region: str
    reason: str
    detail: str = ""
    page: int | None = None


def chosen_annotation(annotations: Sequence[Any]) -> dict[str, Any] | None:
    """The annotation that counts: ground truth, else the newest submitted; None when none is."""
    submitted = [
        a
        for a in annotations
        if isinstance(a, dict) and not a.get("was_cancelled") and isinstance(a.get("result"), list)
    ]
    if not submitted:
        return None

    def newest(annotation: dict[str, Any]) -> tuple[bool, str, int]:
        # ISO 8601 times sort as text; the id breaks ties (a later annotation has a higher one).
        when = str(annotation.get("updated_at") or annotation.get("created_at") or "")
        ident = annotation.get("id")
        return bool(annotation.get("ground_truth")), when, ident if isinstance(ident, int) else 0

    return max(submitted, key=newest)


def text_regions(task_id: int, result: Sequence[Any]) -> tuple[list[TextRegion], list[LeftOut]]:
    """The regions of an annotation's result that hold one line of text, and those left out."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in result:
        if isinstance(item, dict) and item.get("id") is not None:
            groups.setdefault(str(item["id"]), []).append(item)
    found: list[TextRegion] = []
    left_out: list[LeftOut] = []
    for region_id, items in groups.items():
        shaped = next(
            (i for i in items if i.get("type") in SHAPE_TYPES and _geometry(i.get("value"))),
            None,
        ) or next((i for i in items if _geometry(i.get("value"))), None)
        texts = [
            str(text)
            for i in items
            if i.get("type") == "textarea" and isinstance(i.get("value"), dict)
            for text in (i["value"].get("text") or [])
            if isinstance(text, str | int | float)
        ]
        page = (shaped or items[0]).get("item_index")
        page_number = page if isinstance(page, int) and not isinstance(page, bool) else None
        lines = [line.strip() for text in texts for line in text.splitlines() if line.strip()]
        if not lines:
            if shaped is not None or texts:
                left_out.append(LeftOut(task_id, region_id, NO_TEXT, page=page_number))
            continue  # a label alone, a keypoint, a choice: not a text region at all
        if shaped is None:
            left_out.append(LeftOut(task_id, region_id, NO_SHAPE, page=page_number))
            continue
        if len(lines) > 1:
            left_out.append(
                LeftOut(
                    task_id,
                    region_id,
                    SEVERAL_LINES,
                    f"{len(lines)} lines in one region; draw one region per line",
                    page_number,
                )
            )
            continue
        if page is not None and (page_number is None or page_number < 0):
            left_out.append(LeftOut(task_id, region_id, BAD_PAGE, f"item_index {page!r}"))
            continue
        found.append(TextRegion(region_id, lines[0], _geometry(shaped["value"]), page_number or 0))
    return found, left_out


def _geometry(value: Any) -> dict[str, Any]:
    """The shape in a result value, or {} when it holds none that can be cut."""
    if not isinstance(value, Mapping):
        return {}
    if "points" in value:
        points = value["points"]
        if (
            isinstance(points, list)
            and len(points) >= 3
            and all(
                isinstance(p, list | tuple) and len(p) == 2 and all(_is_number(c) for c in p)
                for p in points
            )
        ):
            return {"points": [[float(x), float(y)] for x, y in points]}
        return {}
    if all(_is_number(value.get(key)) for key in ("x", "y", "width", "height")) and _is_number(
        value.get("rotation") or 0
    ):
        return {
            key: float(value.get(key) or 0) for key in ("x", "y", "width", "height", "rotation")
        }
    return {}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
