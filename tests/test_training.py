"""`ocr-backend train`: a project of photographed meter displays, fine-tuned from the stock
recogniser on a few tasks, measured on held-out ones, served to that project only.

A small set and a short run (CI): six tasks of three lines, two passes. The
figures of a full run are bench/train.py's (docs/training.md).
"""

from __future__ import annotations

import json

import pytest

from ocr_backend.training.export import split_tasks
from ocr_backend.training.registry import ModelRegistry
from tests.support.label_studio import OCR_TEMPLATE
from tests.support.label_studio_api import LabelStudioApi
from tests.support.meter_displays import annotation_result, fonts_missing, meter_photo
from tests.support.processes import run_train

pytestmark = [
    pytest.mark.slow,  # a training process; minutes on two busy cores
    pytest.mark.timeout(1800),
    pytest.mark.skipif(fonts_missing() is not None, reason=str(fonts_missing())),
]


@pytest.fixture
def label_studio():
    server = LabelStudioApi(storage_url="http://127.0.0.1:9")
    yield server
    server.close()


def test_train_promotes_a_better_model_for_its_project_only(label_studio, tmp_path):
    label_studio.add_project(5, OCR_TEMPLATE)
    tasks = []
    for number in range(6):
        photo = meter_photo(seed=2000 + number, lines=3)
        label_studio.uploads[f"upload/5/m{number}.jpg"] = photo.jpeg
        result = annotation_result(photo)
        if number == 0:  # a reading with a degree sign, which english_g2 cannot write
            result[-1]["value"]["text"] = ["TEMP 21°"]
        tasks.append(
            label_studio.add_task(5, {"ocr": f"/data/upload/5/m{number}.jpg"}, {"result": result})
        )
    assert "val" in split_tasks(tasks).values()
    settings = {
        "LABEL_STUDIO_HOST": label_studio.host,
        "LABEL_STUDIO_ACCESS_TOKEN": label_studio.personal_access_token,
        "LANG_LIST": "en",
        "DEVICE": "cpu",
        "MODEL_DIR": str(tmp_path / "models"),
        "TRAINING_THREADS": "2",
        "TRAINING_EPOCHS": "2",
        "LOG_LEVEL": "WARNING",
    }
    done = run_train(5, settings, timeout_s=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    registry = ModelRegistry(tmp_path / "models", label_studio.host)
    figures = registry.trainings(5)[0]
    assert figures["cer_after"] < figures["cer_before"], figures
    served = registry.current(5)
    assert served is not None and served.version.endswith("-project5-training1")
    assert f"serving {served.version}" in done.stdout
    assert registry.current(6) is None, "other projects keep the stock model"
    assert figures["missing_characters"] == {"°": 1} and figures["unlearnable_lines"] == 1
    assert "cannot write" in done.stdout and "°" in done.stdout
    progress = json.loads((registry.folder(5) / "progress.json").read_text())
    assert progress["state"] == "promoted" and progress["version"] == served.version
    # Nothing half-written is left where the service looks.
    assert sorted(p.name for p in registry.folder(5).iterdir()) == [
        "current.json",
        "progress.json",
        "training-1.json",
        "training-1.pth",
    ]
