"""A real Label Studio's bulk job read by the service on a real Ray cluster on this machine.

The service (`python -m ocr_backend`) starts with RAY_ADDRESS naming a cluster of
a head and two worker nodes with one CPU each, and joins it as a driver. Label
Studio's "Retrieve predictions" sends the project's tasks in one /predict; with
a PREDICT_DEADLINE of a few seconds most of them are read after the answer, as
a bulk job, and written through Label Studio's API. The pool spreads the job
over both nodes. Then a second project, and one worker node killed halfway
through its job: every task still ends with exactly one prediction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.processes import wait_until
from tests.support.ray_cluster import ray_cluster

from .flow import OcrProject, create_ocr_project
from .images import TextImage, draw_text_image
from .labelstudio import LabelStudioApi, LabelStudioServer
from .ocr_results import all_texts, words
from .service import Service

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

DEADLINE_S = 3.0  # most tasks are left to the bulk job, read after the answer
WORDS = ["ALPHA", "BRAVO", "CHARLIE", "DELTA", "ECHO", "FOXTROT", "GOLF", "HOTEL"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Any, list[Any]]]:
    with ray_cluster([{"num_cpus": 1}, {"num_cpus": 1}]) as (ray_cluster_, nodes):
        yield ray_cluster_, nodes


@pytest.fixture(scope="module")
def service(
    cluster,
    service_factory: Callable[..., Service],
    label_studio: LabelStudioServer,
    personal_access_token: str,
) -> Iterator[Service]:
    ray_cluster_, _ = cluster
    service = service_factory(
        "cluster",
        LABEL_STUDIO_HOST=label_studio.url,
        LABEL_STUDIO_ACCESS_TOKEN=personal_access_token,
        RAY_ADDRESS=ray_cluster_.address,
        RAY_ACTORS="2",
        PREDICT_DEADLINE=str(DEADLINE_S),
    )
    yield service
    service.stop()


def page_images(prefix: str) -> list[TextImage]:
    """One image per word, three lines each: a second or two of reading per image."""
    return [
        draw_text_image(f"{prefix}-{word.lower()}.png", f"{word} ONE", f"{word} TWO", "END")
        for word in WORDS
    ]


def project_of(
    title: str, prefix: str, api: LabelStudioApi, ocr_config: str, image_server: str, work_dir
) -> OcrProject:
    images = page_images(prefix)
    for image in images:  # the session's image server serves this folder
        (work_dir / "served-images" / image.name).write_bytes(image.png)
    return create_ocr_project(
        api,
        title,
        ocr_config,
        url_images=[(f"{image_server}/{image.name}", image) for image in images],
    )


def health(service: Service) -> dict[str, Any]:
    return httpx.get(f"{service.url}/health", timeout=2.0, trust_env=False).json()


def connect(api: LabelStudioApi, project: OcrProject, service: Service) -> None:
    response = api.connect_backend(project.id, service.url_for_label_studio)
    assert response.status_code == 201, response.text


def retrieve(api: LabelStudioApi, project: OcrProject) -> dict[str, Any]:
    """ "Retrieve predictions" on every task: answered within the deadline, the rest pending."""
    started = time.monotonic()
    answer = api.retrieve_predictions(project.id, project.task_ids)
    assert answer.get("processed_items") == len(WORDS), answer
    assert time.monotonic() - started < DEADLINE_S + 20, "the action waited for the job"
    return answer


def wait_for_every_task(api: LabelStudioApi, project: OcrProject, service: Service) -> None:
    wait_until(
        "a prediction on every task",
        lambda: api.tasks_with_predictions(project.task_ids) == len(WORDS),
        timeout_s=600,
        child=service.process.process,
    )
    time.sleep(2)  # a write twice would show up now


def check_one_prediction_each(api: LabelStudioApi, project: OcrProject) -> None:
    for task_id, image in project.image_by_task.items():
        stored = api.predictions(task_id)
        assert len(stored) == 1, (task_id, stored)
        read = words(all_texts(stored[0]["result"]))
        assert image.lines[0].split()[0] in read, (task_id, image.name, read)


def test_one_batch_from_label_studio_spreads_over_both_worker_nodes(
    service: Service,
    ls_api: LabelStudioApi,
    ocr_config: str,
    image_server: str,
    work_dir,
    timings,
) -> None:
    project = project_of("OCR cluster", "cluster", ls_api, ocr_config, image_server, work_dir)
    connect(ls_api, project, service)
    with timings.step(f"bulk job of {len(WORDS)} tasks on 2 Ray worker nodes"):
        retrieve(ls_api, project)
        (batch,) = [call for call in service.proxy.calls("/predict") if len(call.body["tasks"]) > 1]
        assert len(batch.body["tasks"]) == len(WORDS)  # one request for the whole batch
        pending = [item for item in batch.answer["results"] if "result" not in item]
        assert pending, "every task was read within the deadline: no bulk job was left"
        wait_for_every_task(ls_api, project, service)
    check_one_prediction_each(ls_api, project)
    pool = health(service)["cluster"]
    print("images read per node:", pool["images_read_by_node"])
    assert len(pool["images_read_by_node"]) == 2
    assert min(pool["images_read_by_node"].values()) >= 3  # a fair share: 4 each, +-1


def test_a_node_killed_mid_batch_costs_no_task(
    cluster,
    service: Service,
    ls_api: LabelStudioApi,
    ocr_config: str,
    image_server: str,
    work_dir,
    timings,
) -> None:
    ray_cluster_, (node_1, _) = cluster
    project = project_of("OCR cluster kill", "kill", ls_api, ocr_config, image_server, work_dir)
    connect(ls_api, project, service)
    before = sum(health(service)["cluster"]["images_read_by_node"].values())
    with timings.step(f"bulk job of {len(WORDS)} tasks, a worker node killed halfway"):
        retrieve(ls_api, project)
        wait_until(
            "three images of the job read",
            lambda: sum(health(service)["cluster"]["images_read_by_node"].values()) - before >= 3,
            timeout_s=300,
            interval_s=0.2,
            child=service.process.process,
        )
        assert ls_api.tasks_with_predictions(project.task_ids) < len(WORDS), (
            "the job ended before the kill"
        )
        # From the main thread: Ray stops a node only from there.
        ray_cluster_.remove_node(node_1, allow_graceful=False)
        wait_for_every_task(ls_api, project, service)
    check_one_prediction_each(ls_api, project)
    state = health(service)
    print("after the kill:", state["cluster"])
    assert state["status"] == "UP" and state["degraded"] is True
    assert state["cluster"]["actors_up"] == 1 and state["cluster"]["redispatched"] >= 1
