"""Steps several test modules share: an OCR project with tasks imported, a backend connected."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .images import TextImage
from .labelstudio import LabelStudioApi

IMAGE_KEY = "ocr"  # the stock template: <Image name="image" value="$ocr"/>


@dataclass
class OcrProject:
    id: int
    image_by_task: dict[int, TextImage] = field(default_factory=dict)
    kind_by_task: dict[int, str] = field(default_factory=dict)  # "upload" | "url" | "data_uri"

    @property
    def task_ids(self) -> list[int]:
        return sorted(self.image_by_task)

    def task_of(self, kind: str) -> int:
        return next(task for task, k in sorted(self.kind_by_task.items()) if k == kind)


def create_ocr_project(
    api: LabelStudioApi,
    title: str,
    label_config: str,
    uploads: list[TextImage] = (),
    url_images: list[tuple[str, TextImage]] = (),
    data_uri_images: list[TextImage] = (),
) -> OcrProject:
    """A project with the stock OCR template and tasks imported in up to three ways."""
    project = OcrProject(id=api.create_project(title, label_config)["id"])
    if uploads:
        answer = api.import_files(project.id, {image.name: image.png for image in uploads})
        _remember(api, project, answer, uploads, "upload")
    if url_images:
        answer = api.import_tasks(project.id, [{"data": {IMAGE_KEY: url}} for url, _ in url_images])
        _remember(api, project, answer, [image for _, image in url_images], "url")
    if data_uri_images:
        answer = api.import_tasks(
            project.id, [{"data": {IMAGE_KEY: image.data_uri()}} for image in data_uri_images]
        )
        _remember(api, project, answer, data_uri_images, "data_uri")
    return project


def _remember(
    api: LabelStudioApi,
    project: OcrProject,
    answer: dict[str, Any],
    images: list[TextImage],
    kind: str,
) -> None:
    """Match each new task to its image by what Label Studio stored in the task's data."""
    task_ids = answer["task_ids"]
    assert len(task_ids) == len(images), (
        f"{kind} import made {len(task_ids)} tasks for {len(images)} images: {answer}"
    )
    for task_id in task_ids:
        reference = api.task(task_id)["data"][IMAGE_KEY]
        matches = [
            image
            for image in images
            if reference == image.data_uri()
            or reference.endswith("/" + image.name)
            or reference.endswith("-" + image.name)
        ]
        assert len(matches) == 1, (
            f"task {task_id} ({reference[:120]!r}) matches {len(matches)} of the {kind} images"
        )
        project.image_by_task[task_id] = matches[0]
        project.kind_by_task[task_id] = kind


def latest_prediction(api: LabelStudioApi, task_id: int) -> dict[str, Any] | None:
    predictions = api.predictions(task_id)
    return max(predictions, key=lambda p: p["id"]) if predictions else None
