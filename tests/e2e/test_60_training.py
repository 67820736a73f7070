"""Learning from the annotators' corrections, against a real Label Studio.

A project of photographed 14-segment meter displays (tests/support/meter_displays.py),
where the stock recogniser misreads about one character in three. Through Label
Studio's API, as people would: an annotator draws and transcribes every line of
a few tasks; "Retrieve predictions" reads the other tasks, never annotated, with
the stock model; "Start Training" on the model card (`POST /api/ml/<id>/train`)
sends the backend START_TRAINING, and it trains in the background (`/jobs`).
The service is stopped half-way and started again: nothing half-done is
served, and the training runs again to its end. Then the model card shows
the project's new model version, "Retrieve predictions" reads the same
never-annotated tasks again with it, and their character error rate is at
least halved. Another project still gets the stock model.

The set is small and the run short, for CI (docs/training.md, "What the
end-to-end test shows", has the figures): TRAIN_TASKS tasks of LINES lines,
EPOCHS passes over each line as it is (TRAINING_VARIANTS=1).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from ocr_backend.processes import pid_alive
from ocr_backend.training.registry import ModelRegistry
from tests.support.meter_displays import (
    MeterPhoto,
    annotation_result,
    fonts_missing,
    line_error_rate,
    meter_photo,
    rotated_corners,
    text_per_line,
)
from tests.support.processes import wait_until

from .labelstudio import LabelStudioApi, LabelStudioServer
from .ocr_results import region_texts, regions
from .service import Service

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(900),
    pytest.mark.skipif(fonts_missing() is not None, reason=str(fonts_missing())),
]

TRAIN_TASKS = 8  # annotated; the backend holds a fifth of them out to pick and judge
HELD_OUT_TASKS = 4  # never annotated: read before and after, the test's own measure
LINES = 5
EPOCHS = 4
VARIANTS = 1  # each line as it is: per line 4 passes, 1 feature reading (2 x 3 copies: 6, 3)
SEED = 61_000


def photos(first: int, count: int) -> dict[str, MeterPhoto]:
    return {
        f"meter-{first + n}.jpg": meter_photo(seed=SEED + first + n, lines=LINES)
        for n in range(count)
    }


def import_photos(
    api: LabelStudioApi, project: int, files: dict[str, MeterPhoto]
) -> dict[int, MeterPhoto]:
    """The photos as uploaded files; task id -> its photo."""
    answer = api.import_files(project, {name: photo.jpeg for name, photo in files.items()})
    found = {}
    for task_id in answer["task_ids"]:
        reference = api.task(task_id)["data"]["ocr"]
        (name,) = [name for name in files if reference.endswith(f"-{name}")]
        found[task_id] = files[name]
    return found


def region_centre(value: dict[str, Any], size: tuple[int, int]) -> tuple[float, float]:
    width, height = size
    if "points" in value:
        points = np.array(value["points"], dtype=np.float64) / 100 * (width, height)
    else:
        points = np.array(rotated_corners({"rotation": 0, **value}, size))
    x, y = points.mean(axis=0)
    return float(x), float(y)


def lines_read(result: list[dict[str, Any]], photo: MeterPhoto) -> list[str]:
    """What a prediction reads on each of the photo's lines (text_per_line)."""
    found = []
    for items in regions(result).values():
        shapes = [i for i in items if i["type"] in ("rectangle", "polygon")]
        if shapes:
            centre = region_centre(shapes[0]["value"], photo.size)
            found.append((centre, "".join(region_texts(items))))
    return text_per_line(found, photo)


def character_error_rate(
    predictions: dict[int, dict[str, Any]], tasks: dict[int, MeterPhoto]
) -> tuple[float, list[tuple[str, str]]]:
    """Edits per character of the truth over every line of the tasks; (read, truth) pairs."""
    read = [
        text
        for task, photo in tasks.items()
        for text in lines_read(predictions[task]["result"], photo)
    ]
    truth = [line.text.replace(" ", "") for photo in tasks.values() for line in photo.lines]
    return line_error_rate(read, list(tasks.values())), list(zip(read, truth, strict=True))


def predictions_of(api: LabelStudioApi, tasks, version: str) -> dict[int, dict[str, Any]]:
    """Each task's prediction of this model version (none yet: left out)."""
    found = {}
    for task_id in tasks:
        mine = [p for p in api.predictions(task_id) if p["model_version"] == version]
        if mine:
            found[task_id] = max(mine, key=lambda p: p["id"])
    return found


def retrieve(
    api: LabelStudioApi, project: int, tasks: dict[int, Any], version: str, service: Service
) -> dict[int, dict[str, Any]]:
    """The Data Manager's "Retrieve predictions" on the tasks; each task's prediction of
    `version`, once all are stored (a task read after PREDICT_DEADLINE is written later)."""
    answer = api.retrieve_predictions(project, sorted(tasks))
    assert answer.get("processed_items") == len(tasks), answer
    wait_until(
        f"a prediction of {version} on each task",
        lambda: len(predictions_of(api, tasks, version)) == len(tasks),
        timeout_s=300,
        child=service.process.process,
    )
    return predictions_of(api, tasks, version)


def trainings(service: Service) -> list[dict[str, Any]]:
    return httpx.get(f"{service.url}/jobs", trust_env=False, timeout=10).json()["trainings"]


def finished_training(service: Service) -> dict[str, Any] | None:
    """The training, once it has ended (an `interrupted` one is started again at start-up)."""
    done = [t for t in trainings(service) if t["state"] in ("promoted", "kept_aside", "failed")]
    return done[0] if done else None


def test_start_training_halves_the_error_rate_of_never_annotated_tasks(
    service_factory: Callable[..., Service],
    label_studio: LabelStudioServer,
    personal_access_token: str,
    ls_api: LabelStudioApi,
    ocr_config: str,
    work_dir: Path,
    artifacts: Path,
    timings,
) -> None:
    started = time.monotonic()
    settings = {
        "LABEL_STUDIO_HOST": label_studio.url,
        "LABEL_STUDIO_ACCESS_TOKEN": personal_access_token,
        "MODEL_DIR": str(work_dir / "training-model-dir"),
        "TRAINING_EPOCHS": str(EPOCHS),
        "TRAINING_VARIANTS": str(VARIANTS),
        "TRAINING_THREADS": "2",
    }
    service = service_factory("training", **settings)
    registry = ModelRegistry(work_dir / "training-model-dir", label_studio.url)
    project = ls_api.create_project("Meter displays", ocr_config)["id"]
    annotated = import_photos(ls_api, project, photos(0, TRAIN_TASKS))
    held_out = import_photos(ls_api, project, photos(100, HELD_OUT_TASKS))
    for task_id, photo in annotated.items():  # an annotator draws and types every line
        ls_api.call(
            "POST",
            f"/api/tasks/{task_id}/annotations/",
            json={"result": annotation_result(photo), "was_cancelled": False, "lead_time": 42.0},
        )
    connected = ls_api.connect_backend(project, service.url_for_label_studio)
    assert connected.status_code == 201, connected.text
    backend = connected.json()["id"]
    stock = ls_api.backend(backend)["model_version"]

    with timings.step(f"training: stock predictions, {HELD_OUT_TASKS} tasks"):
        before = retrieve(ls_api, project, held_out, stock, service)
    stock_cer, stock_pairs = character_error_rate(before, held_out)

    # "Start Training" on the model card.
    ls_api.call("POST", f"/api/ml/{backend}/train", expect=200, json={})
    (webhook,) = [
        call for call in service.proxy.calls("/webhook") if call.body["action"] == "START_TRAINING"
    ]
    assert webhook.body["project"]["id"] == project
    assert webhook.status == 200 and webhook.answer["job"] == f"training-project-{project}"
    assert webhook.seconds < 5, "START_TRAINING was not answered at once"

    # The service is stopped while it trains (a deploy, a reboot): the training stops with
    # it and serves nothing; the service started again trains again from the beginning.
    wait_until(
        "the training to run (GET /jobs)",
        lambda: [t["state"] for t in trainings(service)] == ["running"],
        timeout_s=120,
        child=service.process.process,
        interval_s=0.2,
    )
    service.stop()
    progress = json.loads((registry.folder(project) / "progress.json").read_text())
    assert progress["state"] == "running" and not pid_alive(progress["pid"]), progress
    assert registry.current(project) is None, "a training stopped half-way serves nothing"
    service = service_factory("training-restarted", **settings)
    # Label Studio pointed at the service again (its address changed with the restart). Without
    # `project`, Label Studio 1.23.2 answers 500 "setup_() missing ... 'project'".
    ls_api.call(
        "PATCH",
        f"/api/ml/{backend}",
        json={"url": service.url_for_label_studio, "project": project},
    )
    assert ls_api.backend(backend)["model_version"] == stock, "served before it was done"
    with timings.step(
        f"training: {TRAIN_TASKS} tasks x {LINES} lines, {EPOCHS} passes x {VARIANTS}"
    ):
        wait_until(
            "the training to end (GET /jobs)",
            lambda: finished_training(service) is not None,
            timeout_s=600,
            child=service.process.process,
            interval_s=2.0,  # the training has the two cores; polling lightly
        )
    training = finished_training(service)
    assert training is not None and training["state"] == "promoted", training
    # Training 1 was stopped and recorded nothing; training 2 learnt from every line.
    (figures,) = registry.trainings(project)
    assert figures["number"] == 2 and figures["train_lines"] + figures["validation_lines"] == (
        TRAIN_TASKS * LINES
    ), figures
    assert (figures["epochs"], figures["variants"]) == (EPOCHS, VARIANTS), figures

    # The model card: Label Studio asks /setup again (auto update) and shows the new version.
    card = ls_api.backend(backend)
    assert card["model_version"] == f"{stock}-project{project}-training2", card
    assert card["state"] == "CO", card  # connected again after "Training"

    predicts = len(service.proxy.calls("/predict"))
    with timings.step(f"training: predictions of the trained model, {HELD_OUT_TASKS} tasks"):
        after = retrieve(ls_api, project, held_out, card["model_version"], service)
    (asked,) = service.proxy.calls("/predict")[predicts:]
    assert sorted(task["id"] for task in asked.body["tasks"]) == sorted(held_out), (
        "Label Studio did not ask again for every task read by the stock model"
    )
    trained_cer, trained_pairs = character_error_rate(after, held_out)

    # Another project, one of the same photos: the stock model, reading as it read.
    other = ls_api.create_project("Meter displays, another team", ocr_config)["id"]
    task_id, photo = next(iter(held_out.items()))
    (other_task,) = import_photos(ls_api, other, {"meter-again.jpg": photo})
    connected = ls_api.connect_backend(other, service.url_for_label_studio)
    assert connected.status_code == 201, connected.text
    assert ls_api.backend(connected.json()["id"])["model_version"] == stock
    elsewhere = retrieve(ls_api, other, {other_task: photo}, stock, service)
    assert lines_read(elsewhere[other_task]["result"], photo) == lines_read(
        before[task_id]["result"], photo
    )

    summary = {
        "train_tasks": TRAIN_TASKS,
        "held_out_tasks": HELD_OUT_TASKS,
        "lines_per_task": LINES,
        "epochs": EPOCHS,
        "variants": VARIANTS,
        "stock_version": stock,
        "trained_version": card["model_version"],
        "held_out_cer_stock": round(stock_cer, 3),
        "held_out_cer_trained": round(trained_cer, 3),
        "training": figures,
        "stock_read": stock_pairs,
        "trained_read": trained_pairs,
        "seconds": round(time.monotonic() - started, 1),
    }
    (artifacts / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"[e2e training] held-out CER {stock_cer:.3f} stock -> {trained_cer:.3f} trained")
    assert trained_cer <= stock_cer / 2, summary
