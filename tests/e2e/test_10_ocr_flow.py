"""The whole OCR pre-annotation flow against a real Label Studio.

The service is started with LABEL_STUDIO_HOST and a personal access token.
Steps, in order: project with the stock OCR template, tasks imported three
ways, backend connected, "Retrieve predictions", a prediction turned into an
annotation, interactive annotating, a screenshot of the labeling page.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import Browser, browser_missing
from tests.support.label_studio import drawn_rectangle

from .flow import OcrProject, create_ocr_project, latest_prediction
from .images import TextImage
from .labelstudio import LabelStudioApi, LabelStudioServer
from .ocr_results import (
    GEOMETRY_TYPES,
    all_texts,
    has_geometry,
    region_labels,
    region_texts,
    regions,
    words,
)
from .service import Service

# Session set-up (installing and starting Label Studio) counts against the first test.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def service(token_service: Service, artifacts: Path) -> Iterator[Service]:
    service = token_service.recorded_as("ocr-flow", artifacts)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def project(
    ls_api: LabelStudioApi,
    ocr_config: str,
    images: dict[str, TextImage],
    image_server: str,
    timings,
) -> OcrProject:
    with timings.step("create project + import 4 tasks three ways"):
        return create_ocr_project(
            ls_api,
            "OCR e2e",
            ocr_config,
            uploads=[images["upload_two_lines"], images["upload_one_line"]],
            url_images=[(f"{image_server}/{images['url'].name}", images["url"])],
            data_uri_images=[images["data_uri"]],
        )


@pytest.fixture(scope="module")
def backend(
    ls_api: LabelStudioApi, project: OcrProject, service: Service, timings
) -> dict[str, Any]:
    with timings.step("connect ML backend (POST /api/ml)"):
        response = ls_api.connect_backend(
            project.id, service.url_for_label_studio, is_interactive=True
        )
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def predictions(
    ls_api: LabelStudioApi, project: OcrProject, backend: dict[str, Any], artifacts: Path, timings
) -> dict[int, dict[str, Any]]:
    with timings.step(f"retrieve predictions for {len(project.task_ids)} tasks (DM action)"):
        answer = ls_api.retrieve_predictions(project.id, project.task_ids)
    assert answer.get("processed_items") == len(project.task_ids), answer
    stored = {task_id: latest_prediction(ls_api, task_id) for task_id in project.task_ids}
    (artifacts / "predictions.json").write_text(json.dumps(stored, indent=2) + "\n")
    return stored


def test_backend_connects_and_setup_is_answered(
    ls_api: LabelStudioApi,
    backend: dict[str, Any],
    service: Service,
    label_studio: LabelStudioServer,
) -> None:
    state = ls_api.backend(backend["id"])
    assert state["state"] == "CO", state
    assert not state["error_message"], state
    setup = service.proxy.calls("/setup")
    assert setup, "Label Studio never called /setup"
    body = setup[-1].body
    assert set(body) >= {"project", "schema", "hostname", "access_token"}, body
    assert body["hostname"] == f"http://localhost:{label_studio.port}"
    assert setup[-1].status == 200 and setup[-1].answer.get("model_version"), setup[-1].answer
    assert state["model_version"] == setup[-1].answer["model_version"]


def test_every_task_gets_a_prediction_with_the_drawn_words(
    project: OcrProject,
    predictions: dict[int, dict[str, Any]],
    backend: dict[str, Any],
    ls_api: LabelStudioApi,
) -> None:
    model_version = ls_api.backend(backend["id"])["model_version"]
    problems = []
    for task_id in project.task_ids:
        kind, image = project.kind_by_task[task_id], project.image_by_task[task_id]
        prediction = predictions[task_id]
        if prediction is None:
            problems.append(f"task {task_id} ({kind}): no prediction stored")
            continue
        assert prediction["model_version"] == model_version
        by_region = regions(prediction["result"])
        assert by_region, f"task {task_id} ({kind}): prediction has no regions"
        for region_id, items in by_region.items():
            types = {item["type"] for item in items}
            assert types & set(GEOMETRY_TYPES), f"region {region_id} has no geometry: {types}"
            assert {"labels", "textarea"} <= types, f"region {region_id}: {types}"
            assert region_labels(items) == ["Text"], items
            assert all(has_geometry(item["value"]) for item in items), items
            assert {item["to_name"] for item in items} == {"image"}
            assert {(item["original_width"], item["original_height"]) for item in items} == {
                (image.width, image.height)
            }
            assert region_texts(items), f"region {region_id} has no text"
        read = words(all_texts(prediction["result"]))
        if not image.words <= read:
            problems.append(
                f"task {task_id} ({kind}): drew {sorted(image.words)}, read {sorted(read)}"
            )
    assert not problems, "\n".join(problems)


def test_retrieving_again_sends_no_task_twice(
    ls_api: LabelStudioApi,
    project: OcrProject,
    predictions: dict[int, dict[str, Any]],
    service: Service,
) -> None:
    """Tasks that have a prediction of the current model_version are not sent again."""
    before = len(service.proxy.calls("/predict"))
    ls_api.retrieve_predictions(project.id, project.task_ids)
    assert len(service.proxy.calls("/predict")) == before
    for task_id in project.task_ids:
        assert len(ls_api.predictions(task_id)) == 1


def test_interactive_annotating_reads_the_line_in_the_rectangle(
    ls_api: LabelStudioApi,
    project: OcrProject,
    backend: dict[str, Any],
    predictions: dict[int, dict[str, Any]],
    service: Service,
    timings,
) -> None:
    task_id = project.task_of("upload")
    image = project.image_by_task[task_id]
    assert len(image.lines) == 2
    region_id = uuid.uuid4().hex[:10]
    # What the labeling UI sends on "regionFinishedDrawing": the serialized
    # region the user just drew (web/dist/apps/labelstudio/main.js, mlInteractive).
    drawn = drawn_rectangle(image.around_line(1), image.size, region_id=region_id)
    with timings.step("interactive annotating, one rectangle"):
        answer = ls_api.call(
            "POST",
            f"/api/ml/{backend['id']}/interactive-annotating",
            json={"task": task_id, "context": {"result": [drawn]}},
        )
    assert "errors" not in answer, answer
    result = answer["data"]["result"]
    assert words(all_texts(result)) == words([image.lines[1]]), result
    assert region_id in regions(result), f"the user's region id {region_id} is not kept: {result}"
    sent = service.proxy.calls("/predict")[-1].body
    assert sent["params"]["context"]["result"][0]["id"] == region_id
    assert [task["id"] for task in sent["tasks"]] == [task_id]


def test_labeling_page_screenshot_shows_predicted_regions(
    label_studio: LabelStudioServer,
    project: OcrProject,
    predictions: dict[int, dict[str, Any]],
    work_dir: Path,
    artifacts: Path,
    timings,
) -> None:
    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    task_id = project.task_of("upload")  # the two-line image, no annotation yet
    shot = artifacts / f"labeling-task-{task_id}.png"
    with timings.step("screenshot of the labeling page (chromium)"):
        browser = Browser(work_dir, artifacts / "chromedriver.log")
        try:
            browser.log_in(
                f"{label_studio.url}/user/login/", label_studio.email, label_studio.password
            )
            browser.open(f"{label_studio.url}/projects/{project.id}/data?task={task_id}")
            # The image shows and the regions list fills in once the task and
            # its prediction are loaded. The screenshot is taken either way:
            # it shows what went wrong.
            try:
                browser.wait_for(
                    "the task's image in the labeling area",
                    "const i = document.querySelector('img[alt=\"image\"]');"
                    " return i && i.complete && i.naturalWidth > 0",
                    timeout_s=90,
                )
                browser.wait_for(
                    "predicted regions in the regions list",
                    "return document.querySelectorAll('.lsf-outliner-item').length",
                    timeout_s=30,
                )
            except TimeoutError as error:
                not_shown = str(error)
            else:
                not_shown = None
            browser.script("return new Promise(r => setTimeout(r, 2000))")
            browser.screenshot(shot)
            (artifacts / "browser-console.log").write_text(browser.console_log() + "\n")
            # The texts read sit in the regions' text fields, not in innerText.
            region_list = browser.script(
                "const o = document.querySelector('.lsf-outliner');"
                " if (!o) return '';"
                " const fields = Array.from(o.querySelectorAll('textarea, input'));"
                " return fields.map(f => f.value).concat([o.innerText]).join('\\n')"
            )
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    assert not_shown is None, f"{not_shown}; see {shot}"
    for line in project.image_by_task[task_id].lines:
        assert words([line]) <= words([region_list]), (
            f"{line!r} not in the region list: {region_list!r}"
        )
