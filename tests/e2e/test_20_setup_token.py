"""The service started without LABEL_STUDIO_HOST and token.

It must then rely on what Label Studio sends in /setup (hostname and the
project owner's legacy token) to fetch uploaded images, which works only
once legacy tokens are turned on for the organisation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .flow import create_ocr_project, latest_prediction
from .images import TextImage
from .labelstudio import LabelStudioApi, LabelStudioServer
from .ocr_results import all_texts, words
from .service import Service

# Session set-up (installing and starting Label Studio) counts against the first test.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def legacy_key(ls_api: LabelStudioApi) -> str:
    """The user's legacy API key: what /setup sends as access_token."""
    return ls_api.call("GET", "/api/current-user/token")["token"]


def _whoami_with_legacy_key(ls_api: LabelStudioApi, key: str):
    return ls_api.http.get("/api/current-user/whoami", headers={"Authorization": f"Token {key}"})


@pytest.fixture(scope="module")
def legacy_tokens(ls_api: LabelStudioApi, legacy_key: str, timings) -> Iterator[dict[str, Any]]:
    # Off by default for a new organisation in Label Studio 1.23.
    refused = _whoami_with_legacy_key(ls_api, legacy_key)
    assert refused.status_code == 401, refused.text
    assert "legacy token authentication has been disabled" in refused.text
    with timings.step("turn legacy tokens on (POST /api/jwt/settings)"):
        settings = ls_api.set_legacy_tokens(True)
    # A precondition of the test below, not what it tests.
    assert _whoami_with_legacy_key(ls_api, legacy_key).status_code == 200
    yield settings
    ls_api.set_legacy_tokens(False)


@pytest.fixture(scope="module")
def service(service_factory: Callable[..., Service], legacy_tokens) -> Iterator[Service]:
    service = service_factory("setup-token")
    yield service
    service.stop()


def test_uploaded_image_read_with_what_setup_sent(
    ls_api: LabelStudioApi,
    label_studio: LabelStudioServer,
    ocr_config: str,
    images: dict[str, TextImage],
    service: Service,
    legacy_key: str,
    timings,
) -> None:
    image = images["upload_one_line"]
    project = create_ocr_project(ls_api, "OCR e2e, token from /setup", ocr_config, uploads=[image])
    response = ls_api.connect_backend(project.id, service.url_for_label_studio)
    assert response.status_code == 201, response.text

    setup = service.proxy.calls("/setup")[-1]
    assert setup.status == 200, setup.answer
    assert setup.body["hostname"] == f"http://localhost:{label_studio.port}"
    # The token /setup carries is the project owner's legacy key.
    assert setup.body["access_token"] == legacy_key

    log_before = label_studio.process.log_path.read_text(errors="replace")
    with timings.step("retrieve predictions, token from /setup (1 task)"):
        ls_api.retrieve_predictions(project.id, project.task_ids)
    task_id = project.task_ids[0]
    prediction = latest_prediction(ls_api, task_id)
    assert prediction is not None, "no prediction stored"
    read = words(all_texts(prediction["result"]))
    assert image.words <= read, f"drew {sorted(image.words)}, read {sorted(read)}"

    # The service fetched the upload from Label Studio itself.
    log_after = label_studio.process.log_path.read_text(errors="replace")[len(log_before) :]
    fetched = re.findall(rf'"GET /data/upload/{project.id}/\S+ HTTP/1.1" (\d+)', log_after)
    assert "200" in fetched, f"Label Studio served no upload to the service: {fetched}"
