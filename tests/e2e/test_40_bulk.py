"""Pre-annotating a whole project against a real Label Studio: nothing lost, nothing twice.

"Retrieve predictions" on more tasks than the service can read within its
PREDICT_DEADLINE (short here, to stay quick): Label Studio's action answers
at once, the service writes the rest through Label Studio's API; it is
killed halfway and started again, and in the end every task has exactly one
prediction. Then `ocr-backend annotate` on another project, interrupted and
run again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.environment import REPO_ROOT
from tests.support.photos import DIAGRAM, encoded, sign_photos
from tests.support.processes import LOOPBACK_ONLY_ENV, ChildProcess, wait_until

from .images import draw_text_image
from .labelstudio import LabelStudioApi, LabelStudioServer
from .ocr_results import has_geometry, region_texts, regions, words
from .service import service_python

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

DEADLINE_S = 3.0
CODE_WORDS = ("ALPHA", "BRAVO", "CHARLIE", "DELTA", "ECHO", "FOXTROT", "GOLF", "HOTEL")


def project_files(prefix: str, pages: int) -> dict[str, tuple[bytes, set[str]]]:
    """Real photos and drawn pages: file name -> (bytes, words that must be read).

    The street signs' photos without the printed lists beside them (a whole street_signs.png
    took three quarters of a read's time), and the diagram's white text on colour."""
    files = {
        f"{prefix}-street_signs.png": (encoded(sign_photos(), "PNG"), set()),
        f"{prefix}-diagram.jpeg": (DIAGRAM.read_bytes(), set()),
    }
    for index in range(pages):
        image = draw_text_image(f"{prefix}-page-{index}.png", f"BULK {CODE_WORDS[index]}")
        files[image.name] = (image.png, image.words)
    return files


def create_project(
    api: LabelStudioApi, title: str, config: str, files: dict
) -> tuple[int, dict[int, set[str]]]:
    """The project's id, and its task ids -> the words each must have."""
    project = api.create_project(title, config)["id"]
    answer = api.import_files(project, {name: data for name, (data, _) in files.items()})
    expected = {}
    for task_id in answer["task_ids"]:
        reference = api.task(task_id)["data"]["ocr"]
        (name,) = [name for name in files if reference.endswith(name)]
        expected[task_id] = files[name][1]
    return project, expected


def predictions_by_task(api: LabelStudioApi, task_ids) -> dict[int, list[dict[str, Any]]]:
    return {task_id: api.predictions(task_id) for task_id in task_ids}


def check_each_task_has_one_prediction(
    api: LabelStudioApi, expected: dict[int, set[str]], model_version: str
) -> None:
    stored = predictions_by_task(api, expected)
    counts = {task: len(found) for task, found in stored.items()}
    assert set(counts.values()) == {1}, f"predictions per task: {counts}"
    for task_id, (prediction,) in stored.items():
        assert prediction["model_version"] == model_version
        found = regions(prediction["result"])
        assert found, f"task {task_id} has no regions"
        for items in found.values():
            geometry = [i for i in items if i["type"] in ("rectangle", "polygon")]
            assert geometry and has_geometry(geometry[0]["value"]), items
        texts = [text for items in found.values() for text in region_texts(items)]
        assert all(text.strip() for text in texts)
        assert expected[task_id] <= words(texts), (task_id, texts)


def test_retrieve_predictions_on_more_than_fits_stores_each_task_once_across_a_kill(
    service_factory: Callable[..., Any],
    label_studio: LabelStudioServer,
    personal_access_token: str,
    ls_api: LabelStudioApi,
    ocr_config: str,
    work_dir: Path,
    timings,
) -> None:
    settings = {
        "LABEL_STUDIO_HOST": label_studio.url,
        "LABEL_STUDIO_ACCESS_TOKEN": personal_access_token,
        "PREDICT_DEADLINE": str(DEADLINE_S),
        "MODEL_DIR": str(work_dir / "bulk-model-dir"),
    }
    service = service_factory("bulk", **settings)
    project, expected = create_project(ls_api, "Bulk e2e", ocr_config, project_files("bulk", 5))
    response = ls_api.connect_backend(project, service.url_for_label_studio)
    assert response.status_code == 201, response.text
    model_version = ls_api.backend(response.json()["id"])["model_version"]

    started = time.monotonic()
    answer = ls_api.retrieve_predictions(project, sorted(expected))
    took = time.monotonic() - started
    timings.record(f"retrieve predictions, {len(expected)} tasks, deadline {DEADLINE_S} s", took)
    assert answer.get("processed_items") == len(expected), answer
    assert took < DEADLINE_S + 20, "the action waited for more than the deadline"
    (predict,) = service.proxy.calls("/predict")
    items = predict.answer["results"]
    assert len(items) == len(expected)
    pending = [item for item in items if "result" not in item]
    assert pending and all(item["status"] == "pending" for item in pending), items
    answered = ls_api.tasks_with_predictions(expected)
    assert answered == len(expected) - len(pending)  # Label Studio stored what was answered

    # Halfway through the background work: killed without warning.
    wait_until(
        "a prediction written through the API",
        lambda: ls_api.tasks_with_predictions(expected) > answered,
        timeout_s=300,
        child=service.process.process,
    )
    os.killpg(service.process.pid, signal.SIGKILL)
    service.stop()
    at_kill = ls_api.tasks_with_predictions(expected)
    assert at_kill < len(expected), "all were written before the kill: nothing left to resume"

    restarted = service_factory("bulk-restarted", **settings)
    with timings.step("bulk job finished after the restart"):
        wait_until(
            "every task with a prediction",
            lambda: ls_api.tasks_with_predictions(expected) == len(expected),
            timeout_s=400,
            child=restarted.process.process,
        )
    time.sleep(2)  # a write twice would show up now
    check_each_task_has_one_prediction(ls_api, expected, model_version)
    jobs = httpx.get(f"{restarted.url}/jobs", trust_env=False).json()["jobs"]
    (job,) = [job for job in jobs if job.get("project", f"{project}.").startswith(f"{project}.")]
    assert job["answered"] + job["written"] == len(expected) and job["failed"] == 0, job
    restarted.stop()


def test_annotate_interrupted_and_run_again_writes_each_task_once(
    label_studio: LabelStudioServer,
    personal_access_token: str,
    ls_api: LabelStudioApi,
    ocr_config: str,
    work_dir: Path,
    artifacts: Path,
    timings,
) -> None:
    project, expected = create_project(
        ls_api, "Annotate e2e", ocr_config, project_files("annotate", 3)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABEL_STUDIO")}
    env.update(LOOPBACK_ONLY_ENV)
    env.update(
        PYTHONPATH=str(REPO_ROOT / "src"),
        LANG_LIST="en",
        MODEL_DIR=str(work_dir / "annotate-model-dir"),
        LABEL_STUDIO_HOST=label_studio.url,
        LABEL_STUDIO_ACCESS_TOKEN=personal_access_token,
    )
    command = [service_python(), "-m", "ocr_backend", "annotate", "--project", str(project)]
    first = ChildProcess("annotate", command, env, artifacts / "annotate-1.log", cwd=REPO_ROOT)
    wait_until(
        "annotate's first prediction",
        lambda: ls_api.tasks_with_predictions(expected) > 0,
        timeout_s=300,
        child=first,
    )
    os.killpg(first.pid, signal.SIGINT)  # Ctrl-C
    assert first.proc.wait(timeout=300) == 130  # after the image in flight: slow when busy
    first.stop()
    after_first = ls_api.tasks_with_predictions(expected)
    assert 0 < after_first < len(expected)
    assert "interrupted: run the same command again" in first.log_path.read_text()

    with timings.step("annotate, run again to the end"):
        second = subprocess.run(
            command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
        )
    (artifacts / "annotate-2.log").write_text(second.stdout + second.stderr)
    assert second.returncode == 0, second.stderr[-2000:]
    assert (
        f"project {project}: {len(expected)} task(s); {after_first} already had this model's "
        f"prediction; {len(expected) - after_first} written; 0 failed"
    ) in second.stdout
    first_version = ls_api.predictions(next(iter(expected)))[0]["model_version"]
    check_each_task_has_one_prediction(ls_api, expected, first_version)
