"""Hostile input and careless setups, in this process: each case once broke the service.

Every test here reproduces one defect an adversarial review found (issue 15)
with the real app, the real EasyOCR and real HTTP servers on 127.0.0.1. The
memory and event-loop cases, which need the service as its own process, are
in tests/test_hostile_process.py.
"""

from __future__ import annotations

import base64
import io
import ipaddress
import json
import struct

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ocr_backend.images.decode import decode_image
from ocr_backend.images.netguard import refusal
from ocr_backend.settings import Settings, format_settings_error
from tests.support.drawing import draw_page
from tests.support.hostile_images import ico_with_a_large_png
from tests.support.image_server import ImageServer
from tests.support.label_studio import OCR_TEMPLATE, ls_predict_body
from tests.support.label_studio_server import LabelStudioServer
from tests.support.settings import changed

NEIGHBOUR = "NEIGHBOUR"
LIMIT = 50_000_000


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def neighbour_uri() -> str:
    return data_uri(encoded(draw_page([NEIGHBOUR])[0], "PNG"))


def texts(prediction: dict) -> set[str]:
    return {
        item["value"]["text"][0]
        for item in prediction.get("result") or []
        if item["type"] == "textarea"
    }


def post_raw(client: TestClient, path: str, body: dict, **kwargs):
    """The body as JSON with \\u escapes kept: lone surrogates reach the service as sent."""
    return client.post(
        path,
        content=json.dumps(body).encode("ascii"),
        headers={"Content-Type": "application/json"},
        **kwargs,
    )


@pytest.fixture(scope="module")
def client(client_for, settings, engine, tmp_path_factory):
    configured = changed(settings, model_dir=tmp_path_factory.mktemp("hostile-models"))
    with client_for(configured, raise_server_exceptions=False) as c:
        yield c


# --- 2. formats that decode inside Image.open --------------------------------------------


def test_an_ico_is_refused_as_an_unsupported_format_before_any_pixel_is_decoded():
    ico = ico_with_a_large_png()
    assert len(ico) < 200_000
    with pytest.raises(Exception) as caught:
        decode_image(ico, max_pixels=LIMIT)
    assert type(caught.value).__name__ == "ImageDecodeError"
    assert "ICO" in str(caught.value) and "PNG" in str(caught.value)  # says what is read


def test_pillows_own_bomb_guard_becomes_the_tasks_too_many_pixels_error(monkeypatch):
    # The service turns Pillow's guard off for its own header check; should anything turn
    # it back on, Pillow's DecompressionBombError is the task's refusal, not a 500.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    with pytest.raises(Exception) as caught:
        decode_image(encoded(Image.new("RGB", (100, 100)), "PNG"), max_pixels=LIMIT)
    assert type(caught.value).__name__ == "ImageDecodeError"
    assert caught.value.reason == "too_many_pixels"


# --- 3. the configured token without its host ----------------------------------------------


def test_a_token_without_label_studio_host_is_refused_at_start_up_in_one_line():
    with pytest.raises(Exception) as caught:
        Settings(_env_file=None, label_studio_access_token="secret-token")
    message = format_settings_error(caught.value)
    assert len(message.splitlines()) == 1
    assert "LABEL_STUDIO_ACCESS_TOKEN" in message and "LABEL_STUDIO_HOST" in message
    assert "secret-token" not in message


# --- 4. one bad task never spoils its neighbours -------------------------------------------


def truncated_ppm() -> bytes:
    return b"P6\n400 400\n"  # cut inside its header


def broken_apng() -> bytes:
    import random

    frames = [Image.new("RGB", (64, 64), colour) for colour in ("white", "black", "red")]
    data = bytearray(
        encoded(frames[0], "PNG", save_all=True, append_images=frames[1:], default_image=True)
    )
    spoil = random.Random(2370)  # two bytes changed: Pillow's ValueError, "Truncated IHDR"
    for _ in range(2):
        data[spoil.randrange(8, len(data))] = spoil.randrange(256)
    return bytes(data)


def broken_avif() -> bytes:
    import random

    data = bytearray(encoded(draw_page(["AVIF"])[0], "AVIF"))
    spoil = random.Random(0)  # three bytes changed: libavif's own error (RuntimeError)
    for _ in range(3):
        data[spoil.randrange(len(data))] = spoil.randrange(256)
    return bytes(data)


def broken_dds() -> bytes:
    data = bytearray(encoded(Image.new("RGB", (64, 64), "white"), "DDS"))
    data[80:88] = struct.pack("<I", 4) + b"XXXX"  # a FourCC no one knows
    return bytes(data)


def wide_png() -> bytes:
    return encoded(Image.new("RGB", (5000, 1), "white"), "PNG")


BAD_REFERENCES = {
    "truncated PPM": lambda: data_uri(truncated_ppm(), "image/x-portable-pixmap"),
    "broken APNG": lambda: data_uri(broken_apng()),
    "broken AVIF": lambda: data_uri(broken_avif(), "image/avif"),
    "broken DDS": lambda: data_uri(broken_dds(), "image/vnd-ms.dds"),
    "port 99999": lambda: "http://127.0.0.1:99999/page.png",
    "bad IDNA name": lambda: "http://a\u00ad\u200d.example/page.png",
    "lone surrogate": lambda: "http://127.0.0.1:9/\ud800.png",
    "5000x1 PNG": lambda: data_uri(wide_png()),
}


@pytest.mark.parametrize("kind", list(BAD_REFERENCES))
def test_a_task_that_breaks_anything_gets_its_own_error_and_its_neighbour_is_read(client, kind):
    body = ls_predict_body(BAD_REFERENCES[kind](), neighbour_uri())
    response = post_raw(client, "/predict", body)
    assert response.status_code == 200, response.text
    bad, good = response.json()["results"]
    assert bad["error"]
    assert texts(good) == {NEIGHBOUR} and "error" not in good


def test_a_lone_surrogate_in_the_project_id_is_just_another_project(client):
    body = ls_predict_body(neighbour_uri())
    body["project"] = "1.\ud800"
    response = post_raw(client, "/predict", body)
    assert response.status_code == 200, response.text
    (good,) = response.json()["results"]
    assert texts(good) == {NEIGHBOUR}
    setup = {"project": "2.\ud800", "schema": OCR_TEMPLATE}
    assert post_raw(client, "/setup", setup).status_code == 200


def test_a_lone_surrogate_in_the_label_config_is_refused_as_bad_xml(client):
    config = OCR_TEMPLATE.replace('value="$ocr"', 'value="$ocr" title="\ud800"')
    body = {**ls_predict_body(neighbour_uri()), "label_config": config}
    response = post_raw(client, "/predict", body)
    assert response.status_code == 422, response.text
    assert "label_config" in response.json()["detail"]
    assert post_raw(client, "/setup", {"schema": config}).status_code == 400


def drawn(region_id: str, x: float, y: float, width: float, height: float) -> dict:
    return {
        "id": region_id,
        "from_name": "bbox",
        "to_name": "image",
        "type": "rectangle",
        "original_width": 100,
        "original_height": 100,
        "value": {"x": x, "y": y, "width": width, "height": height, "rotation": 0},
    }


def interactive_body(uri: str, *regions: dict) -> dict:
    body = ls_predict_body(uri)
    body["params"]["context"] = {"result": list(regions)}
    return body


@pytest.mark.parametrize(
    "shape",
    [
        {"x": 1e308, "y": 0, "width": 50, "height": 50},
        {"x": 0, "y": 0, "width": 1e308, "height": 1e308},
        {"x": -1e308, "y": -1e308, "width": 1e308, "height": 1e308},
    ],
)
def test_region_coordinates_of_1e308_are_read_as_what_lies_on_the_image(client, shape):
    regions = [drawn("huge", **shape), drawn("page", 0, 0, 100, 100)]
    response = client.post("/predict", json=interactive_body(neighbour_uri(), *regions))
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["results"]
    by_id = {
        i["id"]: i["value"]["text"][0] for i in prediction["result"] if i["type"] == "textarea"
    }
    assert by_id["page"] == NEIGHBOUR


def test_a_polygon_at_1e308_is_read_as_what_lies_on_the_image(client):
    polygon = {
        "id": "poly",
        "from_name": "poly",
        "to_name": "image",
        "type": "polygon",
        "value": {"points": [[0, 0], [1e308, 0], [1e308, 1e308], [0, 100]]},
    }
    response = client.post("/predict", json=interactive_body(neighbour_uri(), polygon))
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["results"]
    assert "error" not in prediction
    assert texts(prediction) == {NEIGHBOUR}


# --- 1. a cap on the regions of one request --------------------------------------------------


def test_more_drawn_regions_than_max_regions_are_refused_before_any_is_read(
    client_for, settings, engine
):
    configured = changed(settings, max_regions=3)
    regions = [drawn(f"r{n}", 0, 0, 100, 100) for n in range(4)]
    with client_for(configured) as c:
        response = c.post("/predict", json=interactive_body(neighbour_uri(), *regions))
    assert response.status_code == 413, response.text
    assert "4 regions" in response.json()["detail"]
    assert "MAX_REGIONS=3" in response.json()["detail"]


# --- 6. cached images remember whose token fetched them ------------------------------------


def test_a_project_whose_token_label_studio_refuses_does_not_read_another_projects_cached_image(
    client_for, settings, engine, tmp_path
):
    storage = ImageServer(tmp_path)
    label_studio = LabelStudioServer(storage_url=f"http://127.0.0.1:{storage.port}")
    try:
        label_studio.uploads["upload/1/secret.png"] = encoded(draw_page(["SECRET"])[0], "PNG")
        configured = changed(settings, model_dir=tmp_path / "models")
        with client_for(configured) as c:
            for project, token in (("1.1", label_studio.legacy_key), ("2.1", "not-a-valid-key")):
                c.post("/setup", json={
                    "project": project, "schema": OCR_TEMPLATE,
                    "hostname": label_studio.host, "access_token": token,
                })  # fmt: skip
            results = []
            for project in ("1.1", "2.1"):
                body = ls_predict_body("/data/upload/1/secret.png")
                body["project"] = project
                results += c.post("/predict", json=body).json()["results"]
    finally:
        label_studio.close()
        storage.close()
    owner, other = results
    assert texts(owner) == {"SECRET"}
    assert other["error"] and texts(other) == set()


# --- 7. the /setup store is bounded -------------------------------------------------------


def test_a_label_config_over_max_label_config_bytes_is_refused_by_setup_and_predict(
    client_for, settings, engine, tmp_path
):
    configured = changed(settings, model_dir=tmp_path, max_label_config_bytes=10_000)
    padding = "<!-- " + "x" * 10_000 + " -->"
    config = OCR_TEMPLATE.replace("</View>", padding + "</View>")
    with client_for(configured) as c:
        setup = c.post("/setup", json={"project": "1.1", "schema": config})
        body = {**ls_predict_body(neighbour_uri()), "label_config": config}
        predict = c.post("/predict", json=body)
    assert setup.status_code == 413 and predict.status_code == 413
    for response in (setup, predict):
        assert "MAX_LABEL_CONFIG_BYTES=10000" in response.json()["detail"]
    assert not list((tmp_path / "label-studio-projects").glob("*.json"))


def test_the_project_store_keeps_the_newest_max_projects_and_forgets_the_oldest(
    client_for, settings, engine, tmp_path
):
    configured = changed(settings, model_dir=tmp_path, max_projects=3)
    with client_for(configured) as c:
        for n in range(1, 6):
            assert c.post("/setup", json={"project": f"{n}.1", "schema": OCR_TEMPLATE}).is_success
        stored = sorted(p.name for p in (tmp_path / "label-studio-projects").glob("*.json"))

        def served(project: str) -> int:
            body = ls_predict_body(neighbour_uri())
            del body["label_config"]
            body["project"] = project
            return c.post("/predict", json=body).status_code

        newest, oldest = served("5.1"), served("1.1")
    assert stored == ["project-3.1.json", "project-4.1.json", "project-5.1.json"]
    assert newest == 200
    assert oldest == 422  # forgotten: /predict asks for the config or a new /setup


# --- 8. metrics labels are a fixed set ----------------------------------------------------


def test_made_up_http_methods_do_not_grow_the_metrics(client):
    client.request("MADEUP", "/health")  # the first made-up method adds the "other" series
    client.get("/metrics")  # ...and the first /metrics its own
    before = _series(client.get("/metrics").text)
    for n in range(200):
        client.request(f"MADEUP{n}", "/health")
    page = client.get("/metrics").text
    assert "MADEUP" not in page
    # Their counts grow, not their series. (Not the page's length: in the whole suite,
    # series that earlier tests' work adds in this process's registry grew it meanwhile.)
    added = [series for series in _series(page) - before if 'method="' in series]
    assert not added, added
    assert 'method="other"' in page


def _series(page: str) -> set[str]:
    """The series of a /metrics page: each sample's name and labels, without its value."""
    return {
        line.rsplit(" ", 1)[0] for line in page.splitlines() if line and not line.startswith("#")
    }


# --- 10. the token goes only to Label Studio's file paths; no body is echoed --------------


@pytest.mark.parametrize(
    "ref", ["/api/current-user/token", "/api/projects/", "/user/account/", "/data/../api/users/"]
)
def test_the_token_is_not_sent_to_label_studio_paths_that_serve_no_files(
    client_for, settings, engine, tmp_path, ref
):
    storage = ImageServer(tmp_path)
    label_studio = LabelStudioServer(storage_url=f"http://127.0.0.1:{storage.port}")
    try:
        configured = changed(
            settings,
            model_dir=tmp_path / "models",
            label_studio_host=label_studio.host,
            label_studio_access_token=label_studio.legacy_key,
        )
        with client_for(configured) as c:
            body = ls_predict_body(ref, neighbour_uri())
            bad, good = c.post("/predict", json=body).json()["results"]
        sent = [h.get("Authorization") for _, h in label_studio.image_requests()]
    finally:
        label_studio.close()
        storage.close()
    assert bad["error"] and "file" in bad["error"]
    assert texts(good) == {NEIGHBOUR}
    assert all(token is None for token in sent)


def test_an_error_answer_body_is_never_echoed_in_the_tasks_error(client, image_server):
    secret = "INTERNAL-SECRET-9c2e"

    (image_server.root / "leak.txt").write_text(f"{secret} db_password=hunter2")
    url = image_server.url("leak.txt")
    missing = image_server.url("missing-" + secret)
    bad, not_found, good = client.post(
        "/predict", json=ls_predict_body(url, missing, neighbour_uri())
    ).json()["results"]
    assert bad["error"] and secret[:8] not in bad["error"]
    assert not_found["error"] and "404" in not_found["error"]
    assert texts(good) == {NEIGHBOUR}


def test_a_json_error_answer_from_an_image_server_is_not_echoed(client, tmp_path):
    import http.server
    import threading

    secret = "AWS-KEY-AKIA-7d1f"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = json.dumps({"detail": secret, "token": secret}).encode()
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/page.png"
        (bad,) = client.post("/predict", json=ls_predict_body(url)).json()["results"]
    finally:
        server.shutdown()
        server.server_close()
    assert "403" in bad["error"] and secret not in bad["error"]


# --- 11. no query string in an error message ------------------------------------------------


def test_a_presigned_urls_signature_is_not_in_the_tasks_error(client):
    url = "http://127.0.0.1:9/bucket/page.png?X-Amz-Signature=SIGNATURE-4b1d&X-Amz-Credential=C"
    (bad,) = client.post("/predict", json=ls_predict_body(url)).json()["results"]
    assert bad["error"] and "SIGNATURE-4b1d" not in bad["error"]
    assert "127.0.0.1:9/bucket/page.png" in bad["error"]


# --- 13. basic auth as Label Studio sends it ---------------------------------------------


def basic(user: str, password: str, encoding: str) -> dict[str, str]:
    raw = f"{user}:{password}".encode(encoding)
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@pytest.mark.parametrize("encoding", ["latin-1", "utf-8"])
def test_a_non_ascii_password_works_as_label_studio_sends_it_latin_1_and_as_curl_sends_it(
    client_for, settings, engine, encoding
):
    secured = changed(settings, basic_auth_user="anna", basic_auth_pass="grüße")
    with client_for(secured) as c:
        assert c.get("/health", headers=basic("anna", "grüße", encoding)).status_code == 200
        assert c.get("/health", headers=basic("anna", "gruße", encoding)).status_code == 401


@pytest.mark.parametrize(
    ("user", "password", "expected"),
    [
        ("ann:e", "pass", "BASIC_AUTH_USER must not contain ':'"),
        ("ann", "pass€", "BASIC_AUTH_PASS has characters Label Studio cannot send"),
        ("анна", "pass", "BASIC_AUTH_USER has characters Label Studio cannot send"),
    ],
)
def test_credentials_label_studio_cannot_send_are_refused_at_start_up(user, password, expected):
    with pytest.raises(Exception) as caught:
        Settings(_env_file=None, basic_auth_user=user, basic_auth_pass=password)
    message = format_settings_error(caught.value)
    assert expected in message and password not in message


# --- 14. no DTD at all --------------------------------------------------------------------


def test_a_doctype_is_refused_even_without_entities(client):
    config = '<!DOCTYPE View [<!ATTLIST Image value CDATA "$evil">]>' + OCR_TEMPLATE.replace(
        'value="$ocr"', ""
    )
    setup = client.post("/setup", json={"schema": config})
    predict = client.post(
        "/predict", json={**ls_predict_body(neighbour_uri()), "label_config": config}
    )
    assert setup.status_code == 400 and predict.status_code == 422
    assert "DTD" in setup.json()["detail"]


# --- the network guard's gaps ------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b:1::a9fe:a9fe",  # local-use NAT64 (RFC 8215)
        "64:ff9b:1:a9fe:a9:fe00::",  # ...its /48 form of 169.254.169.254
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "168.63.129.16",  # Azure's wire server
        "::ffff:168.63.129.16",
    ],
)
def test_the_network_guard_refuses_these_even_with_private_networks_allowed(address):
    assert refusal(ipaddress.ip_address(address), allow_private=True) is not None


def test_6to4_of_a_public_address_is_allowed():
    assert refusal(ipaddress.ip_address("2002:0808:0808::1"), allow_private=True) is None


# --- 16-bit images ---------------------------------------------------------------------------


def test_16_bit_grey_decodes_to_the_same_pixels_as_before(tmp_path):
    import numpy as np

    ramp = (np.arange(256 * 64, dtype=np.uint32).reshape(64, 256) * 4).astype(np.uint16)
    decoded = np.asarray(decode_image(encoded(Image.fromarray(ramp), "PNG"), max_pixels=LIMIT))
    expected = np.clip(ramp / 65535.0 * 255.0 + 0.5, 0, 255).astype(np.uint8)
    assert (decoded[..., 0] == expected).all()
