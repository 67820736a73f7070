"""`ocr-backend annotate`: a project's tasks read in this process and written to Label Studio.

Real EasyOCR; Label Studio is the small server of the image tests (token
checks, /api/predictions/) on 127.0.0.1, with a project and its task list
added here: the real one runs in tests/e2e/test_40_bulk.py.
"""

from __future__ import annotations

import pytest
from rich.console import Console

from ocr_backend.commands.annotate import annotate
from tests.support.drawing import draw_page
from tests.support.label_studio import OCR_TEMPLATE
from tests.support.label_studio_server import LabelStudioWithPredictions
from tests.support.settings import changed


def label_studio_project(tasks: list[dict]) -> LabelStudioWithPredictions:
    """Project 7 with its label config and these tasks (and the predictions they have)."""
    server = LabelStudioWithPredictions(storage_url="http://127.0.0.1:9")
    server.label_configs[7] = OCR_TEMPLATE
    for task in tasks:
        server.add_task(task["id"], task["data"], project=7)
        for prediction in task["predictions"]:
            server.predictions.append({"task": task["id"], "result": [], **prediction})
    return server


@pytest.fixture
def words(image_server) -> list[str]:
    return [image_server.put(f"annotate-{w}.png", draw_page([w])[0]) for w in ("HELLO", "WORLD")]


async def test_every_task_without_this_version_is_read_and_written_once(
    settings, engine, image_server, words, tmp_path
):
    from ocr_backend.predictor import model_version

    version = model_version(settings, engine)
    tasks = [
        {"id": 1, "data": {"ocr": words[0]}, "predictions": []},
        {"id": 2, "data": {"ocr": words[1]}, "predictions": []},
        {"id": 3, "data": {"ocr": words[0]}, "predictions": [{"model_version": version}]},
        {"id": 4, "data": {"ocr": image_server.url("missing.png")}, "predictions": []},
    ]
    label_studio = label_studio_project(tasks)
    try:
        configured = changed(
            settings,
            model_dir=tmp_path,  # the queue annotate claims tasks in
            label_studio_host=label_studio.host,
            label_studio_access_token=label_studio.personal_access_token,
        )
        summary = await annotate(configured, engine, 7, Console(quiet=True))
    finally:
        label_studio.close()
    assert (summary.tasks, summary.skipped, summary.written) == (4, 1, 2)
    assert dict(summary.failed) == {"http_status": 1} and not summary.interrupted
    written = {p["task"]: p for p in label_studio.predictions if p["task"] != 3}
    assert sorted(written) == [1, 2]  # each once; the one that had this version is left alone
    for task, word in ((1, "HELLO"), (2, "WORLD")):
        assert written[task]["model_version"] == version
        texts = [i["value"]["text"][0] for i in written[task]["result"] if i["type"] == "textarea"]
        assert texts == [word]
