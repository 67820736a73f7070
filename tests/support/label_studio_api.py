"""The stand-in Label Studio of tests/support/label_studio_server.py, plus the project API
that training reads: projects, tasks with their annotations, predictions.

Shapes as Label Studio 1.23.2 answers them: `GET /api/projects/<id>/` is the
project with its `label_config`; `GET /api/tasks?project=<id>&fields=all`
pages through `{"tasks": [...], "total": N}`, each task with `annotations`
(`result`, `was_cancelled`, `ground_truth`, `created_at`, `updated_at`) and
`predictions`. Every API call needs a token, as Label Studio's does.
"""

from __future__ import annotations

import itertools
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.label_studio_server import LabelStudioServer


class LabelStudioApi(LabelStudioServer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.projects: dict[int, dict[str, Any]] = {}
        self.tasks: dict[int, list[dict[str, Any]]] = {}
        self.predictions: list[dict[str, Any]] = []
        self._task_ids = itertools.count(1)
        self._annotation_ids = itertools.count(1)

    def add_project(self, project: int, label_config: str, title: str = "OCR") -> None:
        self.projects[project] = {"id": project, "title": title, "label_config": label_config}
        self.tasks.setdefault(project, [])

    def add_task(self, project: int, data: dict[str, Any], *annotations: dict[str, Any]) -> int:
        """A task with these annotations (each: `result`, and any of `was_cancelled`,
        `ground_truth`, `created_at`, `updated_at`); its id."""
        task_id = next(self._task_ids)
        self.tasks[project].append(
            {
                "id": task_id,
                "data": data,
                "project": project,
                "annotations": [self.annotation(task_id, **a) for a in annotations],
                "predictions": [],
                "is_labeled": bool(annotations),
            }
        )
        return task_id

    def annotation(self, task_id: int, **fields: Any) -> dict[str, Any]:
        return {
            "id": next(self._annotation_ids),
            "task": task_id,
            "completed_by": 1,
            "was_cancelled": False,
            "ground_truth": False,
            "created_at": "2026-11-23T10:00:00.000000Z",
            "updated_at": "2026-11-23T10:00:00.000000Z",
            "lead_time": 12.5,
            **fields,
        }

    def get(self, handler) -> None:
        parts = urlsplit(handler.path)
        segments = parts.path.strip("/").split("/")
        if segments[:2] != ["api", "projects"] and parts.path != "/api/tasks":
            return super().get(handler)
        _, error = self.user(handler)
        if error is not None:
            return self.answer(handler, 401, error)
        if parts.path == "/api/tasks":
            query = parse_qs(parts.query)
            project = int(query["project"][0])
            page, size = int(query.get("page", ["1"])[0]), int(query.get("page_size", ["100"])[0])
            tasks = self.tasks.get(project, [])
            for task in tasks:
                task["predictions"] = [p for p in self.predictions if p["task"] == task["id"]]
            chosen = tasks[(page - 1) * size : page * size]
            if not chosen and page > 1:
                return self.answer(handler, 404, {"detail": "Invalid page."})
            return self.answer(handler, 200, {"tasks": chosen, "total": len(tasks)})
        if len(segments) == 3 and segments[2].isdigit() and int(segments[2]) in self.projects:
            return self.answer(handler, 200, self.projects[int(segments[2])])
        return self.answer(handler, 404, {"detail": "Not found."})

    def post(self, handler) -> None:
        if urlsplit(handler.path).path != "/api/predictions/":
            return super().post(handler)
        _, error = self.user(handler)
        if error is not None:
            return self.answer(handler, 401, error)
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length))
        body["id"] = len(self.predictions) + 1
        self.predictions.append(body)
        return self.answer(handler, 201, body)
