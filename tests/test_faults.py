"""Bad input and failing image servers: each gets a clear answer, and nothing crashes.

The cases tests/test_images.py and tests/test_api.py already cover (formats,
16-bit, CMYK, bombs, truncation, 404, refused connection, missing fields) are
not repeated; these are the rest, through the HTTP API where a user meets them.
"""

from __future__ import annotations

import io
import struct
import time
import zlib

import pytest
from PIL import Image

from ocr_backend.errors import ImageFetchError
from ocr_backend.images.fetch import ImageFetcher, new_http_client
from tests.support.drawing import draw_page
from tests.support.fault_servers import FaultServer, SilentServer
from tests.support.label_studio import OCR_TEMPLATE
from tests.support.processes import closed_port

BOMB_BODY = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    '<View><Image name="image" value="$ocr"/><Text name="t" value="&lol2;"/></View>'
)


@pytest.fixture(scope="module")
def servers():
    faults, silent = FaultServer(), SilentServer()
    yield faults, silent
    faults.close()
    silent.close()


@pytest.fixture(scope="module")
def client(settings, client_for):
    with client_for(settings, fetch_timeout=1.0, max_image_bytes=100_000) as test_client:
        yield test_client


def predict_body(*refs, config=OCR_TEMPLATE) -> dict:
    tasks = [{"id": i, "data": {"ocr": ref}} for i, ref in enumerate(refs, start=1)]
    return {"tasks": tasks, "label_config": config}


# --- bodies that are not a predict request ------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"tasks=1", "The request body is not valid JSON (Expecting value)"),
        (b'{"tasks": [', "The request body is not valid JSON"),
        (b"[1, 2]", "The request body must be a JSON object"),
        (b'"tasks"', "The request body must be a JSON object"),
        (b"42", "The request body must be a JSON object"),
        (b'{"task": []}', '"tasks" is required but missing'),
        (b'{"tasks": []}', '"tasks" is empty: send at least one task'),
        (b'{"tasks": {"id": 1}}', '"tasks": Input should be a valid list'),
        (b'{"tasks": [{"id": 1}]}', '"tasks.0.data" is required but missing'),
    ],
)
def test_a_body_that_is_not_a_predict_request_gets_a_422_in_words(client, content, message):
    response = client.post(
        "/predict", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["message"].startswith(message), body["message"]
    assert isinstance(body["detail"], list)  # FastAPI's shape, which clients parse


def test_an_empty_body_says_the_body_is_missing(client):
    response = client.post("/predict", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["message"] == "The request body is missing"


def test_a_task_without_the_image_key_fails_alone_and_says_which_key(client):
    body = {"tasks": [{"id": 5, "data": {"image": "x.png"}}], "label_config": OCR_TEMPLATE}
    response = client.post("/predict", json=body)
    assert response.status_code == 200
    (prediction,) = response.json()["results"]
    assert "result" not in prediction and prediction["status"] == "failed"
    assert prediction["error"] == (
        'task 5 has no "ocr" in its data (it has: image); the label config\'s Image tag reads $ocr'
    )


# --- label configs ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("this is not XML", "The label config is not valid XML"),
        (BOMB_BODY, "The label config declares XML entities or a DTD, which are refused"),
        ("<View><Text name='t' value='$text'/></View>", "The label config has no <Image> tag"),
    ],
)
def test_a_label_config_that_cannot_be_served_is_refused_by_setup_and_predict(
    client, config, message
):
    setup = client.post("/setup", json={"project": "9.1", "schema": config})
    assert setup.status_code == 400
    assert setup.json()["detail"].startswith(message)
    predict = client.post("/predict", json=predict_body("data:,", config=config))
    assert predict.status_code == 422
    assert predict.json()["detail"].startswith(f"label_config: {message}")


# --- image servers that fail -------------------------------------------------------


def bomb_png() -> bytes:
    """A small PNG whose header claims 100000x100000 pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG")
    small = buffer.getvalue()
    ihdr = b"IHDR" + struct.pack(">II", 100_000, 100_000) + small[24:29]
    return small[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + small[33:]


def test_every_failing_image_gets_its_own_error_and_the_good_one_is_read(
    client, servers, image_server
):
    faults, silent = servers
    (image_server.root / "bomb.png").write_bytes(bomb_png())
    (image_server.root / "not-an-image.png").write_bytes(b"<html>a login page</html>")
    cases = {
        "gopher://127.0.0.1:70/1": "the scheme 'gopher://' is not supported",
        "ftp://127.0.0.1/a.png": "the scheme 'ftp://' is not supported",
        "file:///etc/passwd": "the scheme 'file://' is not supported",
        f"http://127.0.0.1:{closed_port()}/a.png": "All connection attempts failed",
        faults.url("/status/500"): "HTTP 500 Internal Server Error",
        faults.url("/status/404"): "HTTP 404 Not Found",
        faults.url("/loop"): "more than 5 redirects",
        silent.url(): "timed out",
        faults.url("/endless"): "larger than MAX_IMAGE_BYTES=100000",
        image_server.url("not-an-image.png"): "not an image Pillow can read",
        image_server.url("bomb.png"): "100000x100000 pixels, more than MAX_IMAGE_PIXELS",
    }
    good = image_server.put("among-faults.png", draw_page(["FINE"])[0])
    refs = [*cases, good]
    started = time.perf_counter()
    response = client.post("/predict", json=predict_body(*refs))
    took = time.perf_counter() - started
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == len(refs)
    for (ref, message), prediction in zip(cases.items(), results, strict=False):
        assert message in prediction["error"], (ref, prediction["error"])
        assert "result" not in prediction and prediction["status"] == "failed"
    assert "error" not in results[-1] and results[-1]["result"]
    # The silent server costs one FETCH_TIMEOUT, not the whole request's patience.
    assert took < 20


async def test_an_endless_download_is_stopped_while_streaming(servers):
    faults, _ = servers
    faults.endless_sent = 0
    async with new_http_client(5) as client:
        with pytest.raises(ImageFetchError, match="larger than MAX_IMAGE_BYTES=100000") as caught:
            await ImageFetcher(client, max_bytes=100_000).fetch(faults.url("/endless"))
    assert caught.value.reason == "too_large"
    # The body would be 6.5 GB; the server got out at most what the sockets buffer.
    assert faults.endless_sent < 64_000_000


async def test_a_server_that_never_answers_times_out_after_fetch_timeout(servers):
    _, silent = servers
    started = time.perf_counter()
    async with new_http_client(0.5) as client:
        with pytest.raises(ImageFetchError, match="timed out") as caught:
            await ImageFetcher(client, max_bytes=100_000).fetch(silent.url())
    assert caught.value.reason == "timeout"
    assert 0.4 < time.perf_counter() - started < 3
