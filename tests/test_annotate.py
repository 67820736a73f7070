"""`ocr-backend annotate`: a project's tasks read in this process and written to Label Studio.

Real EasyOCR; Label Studio is the small server of the image tests (token
checks, /api/predictions/) on 127.0.0.1, with a project and its task list
added here: the real one runs in tests/e2e/test_40_bulk.py.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from rich.console import Console

from ocr_backend.commands.annotate import annotate
from tests.support.drawing import draw_page
from tests.support.label_studio import OCR_TEMPLATE
from tests.support.settings import changed
from tests.test_jobs import LabelStudioWithPredictions


class LabelStudioProject(LabelStudioWithPredictions):
    """One project (id 7) with its label config and its tasks, one page of them."""

    def __init__(self, tasks: list[dict], **kwargs) -> None:
        super().__init__(**kwargs)
        self.tasks = tasks

    def get(self, handler) -> None:
        parts = urlsplit(handler.path)
        if parts.path == "/api/projects/7/":
            return self.answer(handler, 200, {"id": 7, "label_config": OCR_TEMPLATE})
        if parts.path == "/api/tasks":
            assert parse_qs(parts.query)["project"] == ["7"]
            body = {"tasks": self.tasks, "total": len(self.tasks)}
            return self.answer(handler, 200, body)
        return super().get(handler)


@pytest.fixture
def words(image_server) -> list[str]:
    return [image_server.put(f"annotate-{w}.png", draw_page([w])[0]) for w in ("HELLO", "WORLD")]


async def test_every_task_without_this_version_is_read_and_written_once(
    settings, engine, image_server, words
):
    from ocr_backend.predictor import model_version

    version = model_version(settings, engine)
    tasks = [
        {"id": 1, "data": {"ocr": words[0]}, "predictions": []},
        {"id": 2, "data": {"ocr": words[1]}, "predictions": []},
        {"id": 3, "data": {"ocr": words[0]}, "predictions": [{"model_version": version}]},
        {"id": 4, "data": {"ocr": image_server.url("missing.png")}, "predictions": []},
    ]
    label_studio = LabelStudioProject(tasks, storage_url="http://127.0.0.1:9")
    try:
        configured = changed(
            settings,
            label_studio_host=label_studio.host,
            label_studio_access_token=label_studio.personal_access_token,
        )
        summary = await annotate(configured, engine, 7, Console(quiet=True))
    finally:
        label_studio.close()
    assert (summary.tasks, summary.skipped, summary.written) == (4, 1, 2)
    assert dict(summary.failed) == {"http_status": 1} and not summary.interrupted
    written = {p["task"]: p for p in label_studio.predictions}
    assert sorted(written) == [1, 2]  # each once; the one that had this version is left alone
    for task, word in ((1, "HELLO"), (2, "WORLD")):
        assert written[task]["model_version"] == version
        texts = [i["value"]["text"][0] for i in written[task]["result"] if i["type"] == "textarea"]
        assert texts == [word]
