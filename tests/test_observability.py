"""What the service shows of itself: /metrics, one log line per request, request ids,
and never a secret."""

from __future__ import annotations

import logging

import pytest

from tests.support.asgi import services_of
from tests.support.drawing import draw_page
from tests.support.label_studio import OCR_TEMPLATE
from tests.support.metrics import samples, value
from tests.support.processes import closed_port
from tests.support.settings import changed


def test_metrics_count_a_predict_its_images_and_ocr_time(client, image_server):
    good = image_server.put("metrics.png", draw_page(["COUNTED"])[0])
    body = {
        "tasks": [{"id": 1, "data": {"ocr": good}}, {"id": 2, "data": {"ocr": "ftp://x/y"}}],
        "label_config": OCR_TEMPLATE,
    }
    before = samples(client.get("/metrics").text)
    assert client.post("/predict", json=body).status_code == 200
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=")
    after = samples(response.text)

    def grew(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = {"method": "POST", "route": "/predict", "status": "200"}
    assert grew("ocr_backend_http_requests_total", **route) == 1
    assert grew("ocr_backend_http_request_duration_seconds_count", **route) == 1
    assert grew("ocr_backend_http_request_duration_seconds_sum", **route) > 0
    assert grew("ocr_backend_ocr_seconds_count") == 1
    assert grew("ocr_backend_ocr_seconds_sum") > 0
    assert grew("ocr_backend_images_fetched_total") == 1
    assert grew("ocr_backend_images_failed_total", reason="scheme") == 1
    assert value(after, "ocr_backend_queue_images") == 0
    assert value(after, "ocr_backend_engine_load_seconds") > 0
    # Requests to no route are counted under one label, not one per path probed.
    client.get("/wp-admin/x")
    assert value(
        samples(client.get("/metrics").text),
        "ocr_backend_http_requests_total",
        method="GET", route="unmatched", status="404",
    ) >= 1  # fmt: skip


def test_each_request_gets_one_log_line_with_its_id_tasks_time_and_outcome(client, caplog):
    body = {
        "tasks": [{"id": 7, "data": {"ocr": "gopher://x"}}, {"id": 8, "data": {"other": 1}}],
        "label_config": OCR_TEMPLATE,
    }
    with caplog.at_level(logging.INFO, logger="ocr_backend"):
        response = client.post("/predict", json=body, headers={"X-Request-ID": "ls-4711"})
    assert response.headers["x-request-id"] == "ls-4711"
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("request ls-4711: task 7: cannot fetch image") for line in lines)
    assert any(line.startswith('request ls-4711: task 8: task 8 has no "ocr"') for line in lines)
    (summary,) = [line for line in lines if line.startswith("request ls-4711 ")]
    assert summary.startswith("request ls-4711 POST /predict 200 tasks=2 failed=2 ")
    assert summary.endswith("s") and float(summary.rsplit(" ", 1)[1][:-1]) >= 0


@pytest.mark.parametrize("sent", [None, "has spaces", "x" * 65, "ünïcode"])
def test_a_missing_or_odd_request_id_is_replaced_by_a_fresh_one(client, sent):
    headers = {"X-Request-ID": sent.encode()} if sent else {}
    first = client.get("/health", headers=headers).headers["x-request-id"]
    second = client.get("/health", headers=headers).headers["x-request-id"]
    assert first != second and len(first) == 16 and first != sent


def test_an_unexpected_error_is_a_500_naming_the_request_id_and_the_service_goes_on(
    settings, engine, client_for, monkeypatch, caplog
):
    async def broken(*args, **kwargs):
        raise RuntimeError("predictor fault injected by the test")

    url = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGP4DwABAQEAG7buVgAAAABJRU5ErkJggg=="
    body = {"tasks": [{"id": 1, "data": {"ocr": url}}], "label_config": OCR_TEMPLATE}
    with client_for(settings, raise_server_exceptions=False) as c:
        # A bug outside any one task's reading: the request itself fails.
        monkeypatch.setattr(services_of(c).queued, "predict", broken)
        with caplog.at_level(logging.INFO, logger="ocr_backend"):
            response = c.post("/predict", json=body)
        monkeypatch.undo()
        assert response.status_code == 500
        request_id = response.headers["x-request-id"]
        assert response.json() == {
            "detail": f"Internal error; the service log has it under request id {request_id}"
        }
        assert "fault injected" not in response.text
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert any(r.exc_info and request_id in r.getMessage() for r in errors)
        assert services_of(c).admission.waiting == 0
        assert c.get("/health").json()["status"] == "UP"


def test_an_unexpected_error_in_one_task_is_that_tasks_error_logged_with_its_traceback(
    settings, engine, client_for, monkeypatch, caplog
):
    async def broken(image, recogniser=None):
        raise RuntimeError("engine fault injected by the test")

    url = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGP4DwABAQEAG7buVgAAAABJRU5ErkJggg=="
    body = {"tasks": [{"id": 1, "data": {"ocr": url}}], "label_config": OCR_TEMPLATE}
    with client_for(settings, raise_server_exceptions=False) as c:
        monkeypatch.setattr(engine, "read", broken)
        with caplog.at_level(logging.INFO, logger="ocr_backend"):
            response = c.post("/predict", json=body)
        monkeypatch.undo()
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        (failed,) = response.json()["results"]
        # No `result`: Label Studio stores nothing for it, and asks again next time.
        assert "result" not in failed and failed["reason"] == "unexpected"
        assert "RuntimeError" in failed["error"] and request_id in failed["error"]
        assert "fault injected" not in response.text
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert any(r.exc_info and request_id in r.getMessage() for r in errors)
        assert services_of(c).admission.waiting == 0
        assert c.get("/health").json()["status"] == "UP"


class TestSecrets:
    """Tokens and passwords never appear in logs, errors or responses."""

    PASSWORD = "PASSWORD-MARKER-3f9a"
    TOKEN = "TOKEN-MARKER-77c1"
    USER_PASSWORD = "LS-USER-PASSWORD-MARKER-91d0"

    def test_no_secret_is_logged_or_answered(self, settings, client_for, caplog):
        secured = changed(
            settings,
            basic_auth_user="labelstudio",
            basic_auth_pass=self.PASSWORD,
            label_studio_access_token=self.TOKEN,
            label_studio_host="http://127.0.0.1:9",
        )
        auth = ("labelstudio", self.PASSWORD)
        params = {"login": "ann", "password": self.USER_PASSWORD, "context": None}
        unreachable = f"http://127.0.0.1:{closed_port()}/x.png"
        responses = []
        with (
            caplog.at_level(logging.DEBUG),
            client_for(secured, raise_server_exceptions=False) as c,
        ):
            responses += [
                c.get("/health"),
                c.get("/metrics", auth=("labelstudio", "wrong")),
                c.post("/predict", auth=auth, content=b"not json"),
                # FastAPI would echo a body with a missing field whole, token included.
                c.post("/setup", auth=auth, json={"access_token": self.TOKEN}),
                c.post("/setup", auth=auth, json={"schema": "<View", "access_token": self.TOKEN}),
                c.post("/predict", auth=auth, json={"params": params}),
                c.post("/predict", auth=auth, json={"tasks": [{"id": 1}], "params": params}),
                c.post(
                    "/predict",
                    auth=auth,
                    json={
                        "tasks": [
                            {"id": 1, "data": {"ocr": unreachable}},
                            {"id": 2, "data": {"ocr": "/data/upload/1/a.png"}},
                        ],
                        "label_config": OCR_TEMPLATE,
                        "params": params,
                    },
                ),
                c.get("/metrics", auth=auth),
            ]
        assert [r.status_code for r in responses] == [401, 401, 422, 422, 400, 422, 422, 200, 200]
        shown = caplog.text + "".join(r.text + str(r.headers) for r in responses)
        for secret in (self.PASSWORD, self.TOKEN, self.USER_PASSWORD):
            assert secret not in shown
        assert len(caplog.records) >= len(responses)  # the logs were really captured
