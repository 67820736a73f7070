"""What Label Studio sends the service: its stock OCR template and /predict bodies.

Shapes as Label Studio 1.23 sends them; docs/label-studio.md says what it
sends and when.
"""

from __future__ import annotations

from ocr_backend.label_studio.config import STOCK_OCR_CONFIG as OCR_TEMPLATE  # noqa: F401


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
