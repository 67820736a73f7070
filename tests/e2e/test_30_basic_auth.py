"""The service behind basic auth: Label Studio connects with the right
credentials and shows the connection as failed with wrong or no credentials."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .flow import OcrProject, create_ocr_project, latest_prediction
from .images import TextImage
from .labelstudio import LabelStudioApi, LabelStudioServer
from .ocr_results import all_texts, words
from .service import Service

# Session set-up (installing and starting Label Studio) counts against the first test.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

USER = "e2e-backend"
PASSWORD = secrets.token_urlsafe(16)


@pytest.fixture(scope="module")
def service(
    service_factory: Callable[..., Service],
    label_studio: LabelStudioServer,
    personal_access_token: str,
) -> Iterator[Service]:
    service = service_factory(
        "basic-auth",
        LABEL_STUDIO_HOST=label_studio.url,
        LABEL_STUDIO_ACCESS_TOKEN=personal_access_token,
        BASIC_AUTH_USER=USER,
        BASIC_AUTH_PASS=PASSWORD,
    )
    yield service
    service.stop()


@pytest.fixture(scope="module")
def project(ls_api: LabelStudioApi, ocr_config: str, images: dict[str, TextImage]) -> OcrProject:
    return create_ocr_project(
        ls_api, "OCR e2e, basic auth", ocr_config, data_uri_images=[images["data_uri"]]
    )


def _backends(ls_api: LabelStudioApi, project: OcrProject) -> list[dict[str, Any]]:
    return ls_api.call("GET", "/api/ml", params={"project": project.id})


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param(
            {"auth_method": "BASIC_AUTH", "basic_auth_user": USER, "basic_auth_pass": "wrong"},
            id="wrong",
        ),
        pytest.param({}, id="none"),
    ],
)
def test_connection_fails_without_the_right_credentials(
    ls_api: LabelStudioApi,
    project: OcrProject,
    service: Service,
    credentials: dict[str, str],
    artifacts,
) -> None:
    response = ls_api.connect_backend(project.id, service.url_for_label_studio, **credentials)
    (artifacts / f"basic-auth-{'wrong' if credentials else 'none'}-credentials.txt").write_text(
        f"{response.status_code}\n{response.text}\n"
    )
    # The connect dialog shows this error and Label Studio stores no connection.
    assert response.status_code == 400, response.text
    assert _backends(ls_api, project) == []
    health = service.proxy.calls("/health")[-1]
    if health.status == 401:
        assert (
            "authentication parameters were either not provided or are incorrect" in response.text
        )
    else:  # /health open to all: the setup call is the one refused
        assert service.proxy.calls("/setup")[-1].status == 401
        assert "401" in response.text


def test_connection_works_with_the_right_credentials(
    ls_api: LabelStudioApi,
    project: OcrProject,
    service: Service,
    images: dict[str, TextImage],
    timings,
) -> None:
    response = ls_api.connect_backend(
        project.id,
        service.url_for_label_studio,
        auth_method="BASIC_AUTH",
        basic_auth_user=USER,
        basic_auth_pass=PASSWORD,
    )
    assert response.status_code == 201, response.text
    backend = ls_api.backend(response.json()["id"])
    assert backend["state"] == "CO", backend

    with timings.step("retrieve predictions through basic auth (1 task)"):
        ls_api.retrieve_predictions(project.id, project.task_ids)
    prediction = latest_prediction(ls_api, project.task_ids[0])
    assert prediction is not None, "no prediction stored"
    image = images["data_uri"]
    assert image.words <= words(all_texts(prediction["result"]))

    # Label Studio sent the credentials on every call, /health included.
    for path in ("/health", "/setup", "/predict"):
        calls = service.proxy.calls(path)
        assert calls and calls[-1].status == 200, path
        assert calls[-1].headers.get("Authorization", "").startswith("Basic "), path


def test_webhook_without_credentials_is_refused_and_the_annotation_kept(
    ls_api: LabelStudioApi, project: OcrProject, service: Service
) -> None:
    """Label Studio's ML webhook (made with the connection) carries no basic auth.

    Basic auth guards every route: the unauthenticated call is a 401, so no one
    can post events as Label Studio. Label Studio stores the annotation all the same.
    """
    prediction = latest_prediction(ls_api, project.task_ids[0])
    assert prediction is not None
    ls_api.call(
        "POST",
        f"/api/tasks/{project.task_ids[0]}/annotations/",
        json={"result": prediction["result"], "was_cancelled": False},
    )
    deadline = time.monotonic() + 5
    while not (webhook := service.proxy.calls("/webhook")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert webhook, "Label Studio sent no /webhook call for the new annotation"
    assert "Authorization" not in webhook[-1].headers
    assert webhook[-1].status == 401
    assert ls_api.task(project.task_ids[0])["total_annotations"] == 1
