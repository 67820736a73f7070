"""What Label Studio sends the service: its stock OCR template and /predict bodies.

Shapes as Label Studio 1.23 sends them; docs/label-studio.md says what it
sends and when.
"""

from __future__ import annotations

from typing import Any

from ocr_backend.label_studio.config import STOCK_OCR_CONFIG as OCR_TEMPLATE  # noqa: F401


def drawn_rectangle(
    box: tuple[float, float, float, float],
    size: tuple[int, int],
    *,
    region_id: str = "user-box-1",
    rotation: float = 0.0,
    from_name: str = "bbox",
    item_index: int | None = None,
) -> dict[str, Any]:
    """A rectangle the user drew around a pixel box (left, top, right, bottom) of a
    width x height image, as Label Studio's labeling UI sends it in `params.context`;
    `item_index` is the page it was drawn on, in a multi-page task."""
    (left, top, right, bottom), (width, height) = box, size
    region: dict[str, Any] = {
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": {
            "x": left / width * 100,
            "y": top / height * 100,
            "width": (right - left) / width * 100,
            "height": (bottom - top) / height * 100,
            "rotation": rotation,
        },
        "id": region_id,
        "from_name": from_name,
        "to_name": "image",
        "type": "rectangle",
        "origin": "manual",
    }
    if item_index is not None:
        region["item_index"] = item_index
    return region


def ls_predict_body(*images: str, task_ids=None) -> dict:
    """Exactly the shape Label Studio 1.23 sends (docs/label-studio.md)."""
    ids = task_ids or range(1, len(images) + 1)
    return {
        "tasks": [
            {
                "id": task_id,
                "data": {"ocr": image},
                "meta": {},
                "created_at": "2026-11-23T10:00:00.000000Z",
                "updated_at": "2026-11-23T10:00:00.000000Z",
                "is_labeled": False,
                "overlap": 1,
                "inner_id": task_id,
                "total_annotations": 0,
                "cancelled_annotations": 0,
                "total_predictions": 0,
                "comment_count": 0,
                "unresolved_comment_count": 0,
                "last_comment_updated_at": None,
                "project": 1,
                "updated_by": None,
                "file_upload": None,
                "comment_authors": [],
                "annotations": [],
                "predictions": [],
            }
            for task_id, image in zip(ids, images, strict=True)
        ],
        "project": "1.1763892800",
        "label_config": OCR_TEMPLATE,
        "params": {"login": None, "password": None, "context": None},
    }
