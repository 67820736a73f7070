"""Starting a training: "Start Training" (START_TRAINING webhook), the legacy /train, and
a restart; /jobs shows it, /setup answers a project's own model version."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ocr_backend.training.registry import ModelRegistry
from ocr_backend.training.trainer import Trainer
from tests.support.drawing import draw_page
from tests.support.label_studio import OCR_TEMPLATE, drawn_rectangle, ls_predict_body
from tests.support.label_studio_api import LabelStudioApi
from tests.support.settings import changed

AUTH = ("operator", "s3cret-pass")


@pytest.fixture
def label_studio():
    server = LabelStudioApi(storage_url="http://127.0.0.1:9")
    yield server
    server.close()


def configured(settings, label_studio, tmp_path):
    return changed(
        settings,
        label_studio_host=label_studio.host,
        label_studio_access_token=label_studio.personal_access_token,
        model_dir=tmp_path / "models",
    )


def test_start_training_without_label_studio_says_what_to_set(client):
    response = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 1}})
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert "LABEL_STUDIO_HOST and LABEL_STUDIO_ACCESS_TOKEN" in response.json()["detail"]
    other = client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 1}})
    assert other.json()["status"] == "ok"


def test_setup_answers_the_project_model_version_and_other_projects_the_stock_one(
    settings, client_for, label_studio, tmp_path
):
    ready = configured(settings, label_studio, tmp_path)
    registry = ModelRegistry(ready.model_dir, label_studio.host)
    number = registry.next_number(7)
    registry.weights_path(7, number).write_bytes(b"weights")
    with client_for(ready) as client:
        stock = client.post("/setup", json={"project": "8.1763892800", "schema": OCR_TEMPLATE})
        registry.record(7, number, {"reason": "test"}, True, stock.json()["model_version"])
        mine = client.post("/setup", json={"project": "7.1763892800", "schema": OCR_TEMPLATE})
        assert mine.json()["model_version"] == (
            f"{stock.json()['model_version']}-project7-training1"
        )
        # A rollback is seen at the next /setup, without a restart.
        registry.rollback(7)
        again = client.post("/setup", json={"project": "7.1763892800", "schema": OCR_TEMPLATE})
        assert again.json()["model_version"] == stock.json()["model_version"]


@pytest.mark.slow  # a training process starts (and fails: the project is not there)
def test_start_training_is_answered_at_once_and_runs_in_the_background(
    settings, client_for, label_studio, tmp_path
):
    # Basic auth on: /jobs shows a training's project and step only to an operator.
    operator = changed(
        configured(settings, label_studio, tmp_path),
        basic_auth_user=AUTH[0],
        basic_auth_pass=AUTH[1],
    )
    with client_for(operator) as client:
        client.auth = AUTH
        started = time.monotonic()
        response = client.post(
            "/webhook", json={"action": "START_TRAINING", "project": {"id": 41, "title": "x"}}
        )
        assert time.monotonic() - started < 5
        assert response.status_code == 200
        assert response.json()["status"] == "started"
        assert response.json()["job"] == "training-project-41"
        again = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 41}})
        assert again.json()["status"] == "running"
        legacy = client.post("/train", json={"project": 42, "annotations": []})
        assert legacy.json() | {"detail": ""} == {
            "status": "queued",
            "job": "training-project-42",
            "detail": "",
        }
        health = time.monotonic()
        assert client.get("/health").status_code == 200
        assert time.monotonic() - health < 2, "/health never waits for a training"
        deadline = time.monotonic() + 600
        failed: dict = {}
        while time.monotonic() < deadline:
            trainings = client.get("/jobs").json()["trainings"]
            failed = next((t for t in trainings if t["project"] == 41), {})
            if failed.get("state") == "failed":
                break
            time.sleep(1)
        # Project 41 is not in that Label Studio: the training fails and says why.
        assert failed.get("state") == "failed", failed
        assert "HTTP 404" in failed["step"]
        assert 'ocr_backend_training_done{project="41"}' in client.get("/metrics").text
        bad = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": "x"}})
        assert bad.status_code == 422 and '"project"' in bad.json()["detail"]


def test_jobs_shows_an_anonymous_caller_a_training_state_but_not_its_project_or_step(
    settings, client_for, label_studio, tmp_path
):
    ready = configured(settings, label_studio, tmp_path)
    folder = ModelRegistry(ready.model_dir, label_studio.host).folder(9)
    folder.mkdir(parents=True, exist_ok=True)
    progress = {
        "project": 9,
        "training": 1,
        "state": "failed",
        "pid": 1,
        "done": 0.2,
        "step": f"HTTPStatusError: 404 from {label_studio.host}/api/projects/9",
    }
    (folder / "progress.json").write_text(json.dumps(progress))
    with client_for(ready) as client:
        anonymous = client.get("/jobs")
    assert anonymous.status_code == 200
    (training,) = anonymous.json()["trainings"]
    assert training["state"] == "failed" and training["done"] == 0.2
    assert "project" not in training and label_studio.host not in anonymous.text
    assert "basic auth" in anonymous.json()["hidden"]
    operator = changed(ready, basic_auth_user=AUTH[0], basic_auth_pass=AUTH[1])
    with client_for(operator) as client:
        (training,) = client.get("/jobs", auth=AUTH).json()["trainings"]
    assert training["project"] == 9 and label_studio.host in training["step"]


@pytest.mark.slow  # a training process starts
def test_a_training_stopped_by_a_restart_starts_again(settings, label_studio, tmp_path):
    ready = configured(settings, label_studio, tmp_path)
    registry = ModelRegistry(ready.model_dir, label_studio.host)
    folder = registry.folder(9)
    (folder / ".training-abc" / "export").mkdir(parents=True)
    (folder / ".training-1.pth.x.tmp").write_bytes(b"half")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    progress = {"project": 9, "training": 1, "state": "running", "pid": gone.pid, "step": "x"}
    (folder / "progress.json").write_text(json.dumps(progress))
    trainer = Trainer(ready)
    assert [t["state"] for t in trainer.trainings()] == ["interrupted"]
    trainer.resume()
    second_worker = Trainer(ready)
    second_worker.resume()
    try:
        assert trainer.running is not None and trainer.running[0] == 9
        assert second_worker.running is None, "another worker does not start it twice"
        assert not (folder / ".training-abc").exists()
        assert not (folder / ".training-1.pth.x.tmp").exists()
        assert registry.current(9) is None, "nothing half-done is served"
    finally:
        if trainer.running is not None:
            trainer.running[1].kill()
            trainer.running[1].wait()


def project_recogniser_that_writes_only(char: str, path: Path) -> Path:
    """Stock english_g2 weights with one output class made to win every step: whatever a
    line shows, this recogniser reads `char`. Which model read a page is then plain."""
    from ocr_backend.ocr.weights import bundled_model_dir
    from ocr_backend.training.alphabet import recogniser_model
    from ocr_backend.training.finetune import save_weights, stock_state

    model = recogniser_model(("en",))
    state = stock_state(bundled_model_dir() / model.filename)  # type: ignore[operator]
    state["Prediction.bias"][model.characters.index(char) + 1] += 100.0
    save_weights(state, path)
    return path


def test_a_project_with_a_promoted_model_is_read_with_it_and_others_with_the_stock_one(
    settings, client_for, label_studio, image_server, tmp_path
):
    ready = configured(settings, label_studio, tmp_path)
    registry = ModelRegistry(ready.model_dir, label_studio.host)
    number = registry.next_number(7)
    project_recogniser_that_writes_only("Z", registry.weights_path(7, number))
    url = image_server.put("training-hello.png", draw_page(["HELLO WORLD"], font_size=40)[0])
    with client_for(ready) as client:
        stock = client.post("/setup", json={"project": "8.1", "schema": OCR_TEMPLATE}).json()
        registry.record(7, number, {"reason": "test"}, True, stock["model_version"])

        def read(project: str) -> dict:
            body = ls_predict_body(url) | {"project": project}
            return client.post("/predict", json=body).json()["results"][0]

        other, mine = read("8.1763892800"), read("7.1763892800")
        assert texts(other) == ["HELLO WORLD"]
        assert other["model_version"] == stock["model_version"]
        assert texts(mine) and all(set(text) <= {"Z", " "} for text in texts(mine))
        assert mine["model_version"] == f"{stock['model_version']}-project7-training1"
        # A region drawn by hand in that project is read with its model too.
        drawn = drawn_rectangle((10, 10, 400, 80), draw_page(["HELLO WORLD"], font_size=40)[0].size)
        body = ls_predict_body(url) | {"project": "7.1", "params": {"context": {"result": [drawn]}}}
        region = client.post("/predict", json=body).json()["results"][0]
        assert texts(region) and set(texts(region)[0]) <= {"Z", " "}


def texts(prediction: dict) -> list[str]:
    return [
        text
        for item in prediction.get("result", [])
        if item["type"] == "textarea"
        for text in item["value"]["text"]
    ]
