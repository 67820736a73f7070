"""Reading Label Studio region results back: regions, labels, texts, words."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

GEOMETRY_TYPES = ("rectangle", "polygon")


def regions(result: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Result items grouped by region id (one text line is one region)."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in result:
        grouped[item["id"]].append(item)
    return dict(grouped)


def region_texts(items: list[dict[str, Any]]) -> list[str]:
    return [
        text
        for item in items
        if item.get("type") == "textarea"
        for text in item["value"].get("text", [])
    ]


def region_labels(items: list[dict[str, Any]]) -> list[str]:
    return [
        label
        for item in items
        if item.get("type") == "labels"
        for label in item["value"].get("labels", [])
    ]


def has_geometry(value: dict[str, Any]) -> bool:
    if "points" in value:
        points = value["points"]
        return len(points) >= 3 and all(0 <= c <= 100 for point in points for c in point)
    box = [value.get(key) for key in ("x", "y", "width", "height")]
    return (
        all(isinstance(v, (int, float)) for v in box)
        and box[2] > 0
        and box[3] > 0
        and all(-0.5 <= v <= 100.5 for v in box)
    )


def words(texts: list[str]) -> set[str]:
    """Upper-case words of the texts read, punctuation at the edges dropped."""
    found = set()
    for text in texts:
        for word in text.split():
            word = re.sub(r"^\W+|\W+$", "", word.upper())
            if word:
                found.add(word)
    return found


def all_texts(result: list[dict[str, Any]]) -> list[str]:
    return [text for items in regions(result).values() for text in region_texts(items)]


def comparable(result: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """A result reduced to what must survive a round trip through Label Studio."""

    def freeze(value: Any) -> Any:
        if isinstance(value, dict):
            return tuple(sorted((key, freeze(item)) for key, item in value.items()))
        if isinstance(value, list):
            return tuple(freeze(item) for item in value)
        if isinstance(value, float):
            return round(value, 4)
        return value

    return sorted(
        (item["id"], item["type"], item["from_name"], item["to_name"], freeze(item["value"]))
        for item in result
    )
