"""The protocol as Label Studio speaks it: /setup, /predict, /webhook, /versions and auth.

Real EasyOCR reads images that a real HTTP server on 127.0.0.1 serves.
"""

from __future__ import annotations

import asyncio
import base64
import io
import math

import numpy as np
import pytest
from PIL import Image

from ocr_backend.convert import lines_to_regions
from ocr_backend.label_studio.config import parse_label_config
from tests.support.drawing import draw_page
from tests.support.label_studio import OCR_TEMPLATE, ls_predict_body


def regions(prediction: dict) -> dict[str, dict]:
    """Group result items by region id: {text: {type: item}}."""
    by_id: dict[str, dict] = {}
    for item in prediction["result"]:
        by_id.setdefault(item["id"], {})[item["type"]] = item
    return {group["textarea"]["value"]["text"][0]: group for group in by_id.values()}


def box_contains(value: dict, width: int, height: int, point) -> bool:
    x, y = point[0] / width * 100, point[1] / height * 100
    if "points" in value:
        xs = [p[0] for p in value["points"]]
        ys = [p[1] for p in value["points"]]
        return min(xs) <= x <= max(xs) and min(ys) <= y <= max(ys)
    return (
        value["x"] <= x <= value["x"] + value["width"]
        and value["y"] <= y <= value["y"] + value["height"]
    )


def test_predict_returns_each_drawn_line_as_a_region_where_it_was_drawn(client, image_server):
    image, drawn = draw_page(["SHIPPING LABEL", "Order 4711", "Berlin"], font_size=44)
    url = image_server.put("lines.png", image)
    response = client.post("/predict", json=ls_predict_body(url))
    assert response.status_code == 200
    (prediction,) = response.json()["results"]
    found = regions(prediction)
    assert set(found) == {"SHIPPING LABEL", "Order 4711", "Berlin"}
    for line in drawn:
        region = found[line.text]
        assert set(region) == {"rectangle", "labels", "textarea"}
        geometry = region["rectangle"]
        assert (geometry["original_width"], geometry["original_height"]) == image.size
        assert box_contains(geometry["value"], *image.size, line.centre)
        assert region["labels"]["value"]["labels"] == ["Text"]
    scores = [group["textarea"]["score"] for group in found.values()]
    assert prediction["score"] == pytest.approx(sum(scores) / len(scores))
    assert prediction["model_version"].startswith("easyocr-1.7.2-en-")
    assert "error" not in prediction


def test_a_missing_image_in_the_middle_leaves_the_others_in_order(client, image_server):
    first = image_server.put("first.png", draw_page(["FIRST"])[0])
    last = image_server.put("last.png", draw_page(["LAST"])[0])
    body = ls_predict_body(first, image_server.url("gone.png"), last, task_ids=[11, 12, 13])
    results = client.post("/predict", json=body).json()["results"]
    assert len(results) == 3
    assert list(regions(results[0])) == ["FIRST"]
    # No `result`: Label Studio stores the others and asks for this one again later.
    assert "result" not in results[1]
    assert results[1]["status"] == "failed" and results[1]["reason"] == "http_status"
    assert "gone.png: HTTP 404" in results[1]["error"]
    assert list(regions(results[2])) == ["LAST"]


def test_an_image_without_text_gets_an_empty_result_not_a_missing_one(client, image_server):
    blank = image_server.put("blank.png", Image.new("RGB", (300, 200), "white"))
    (prediction,) = client.post("/predict", json=ls_predict_body(blank)).json()["results"]
    assert prediction["result"] == [] and prediction["score"] == 0.0
    assert "error" not in prediction


def test_exif_rotated_photo_reads_like_its_upright_twin_with_sides_swapped(client, image_server):
    upright, _ = draw_page(["ROTATED PHOTO", "Second line"], font_size=44)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = upright.rotate(90, expand=True)
    twin = image_server.put("upright.jpg", upright, quality=95)
    turned = image_server.put("exif6.jpg", stored, quality=95, exif=exif)
    straight, rotated = client.post("/predict", json=ls_predict_body(twin, turned)).json()[
        "results"
    ]
    assert set(regions(rotated)) == set(regions(straight)) == {"ROTATED PHOTO", "Second line"}
    item = rotated["result"][0]
    # Label Studio shows the photo upright: that is the size and frame of every region.
    assert (item["original_width"], item["original_height"]) == upright.size
    assert stored.size == (upright.height, upright.width)


def test_inline_data_uri_images_work(client):
    buffer = io.BytesIO()
    draw_page(["INLINE"])[0].save(buffer, "PNG")
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    (prediction,) = client.post("/predict", json=ls_predict_body(uri)).json()["results"]
    assert list(regions(prediction)) == ["INLINE"]


def test_predict_equals_the_engines_own_readtext_converted(client, engine, image_server):
    image, _ = draw_page(["Same as", "readtext"], font_size=40)
    url = image_server.put("same.png", image)
    (prediction,) = client.post("/predict", json=ls_predict_body(url)).json()["results"]
    expected = lines_to_regions(
        asyncio.run(engine.read(np.asarray(image))), parse_label_config(OCR_TEMPLATE), *image.size,
        region_id=lambda: "id",
    )  # fmt: skip
    got = [{**item, "id": "id"} for item in prediction["result"]]
    assert got == expected


def test_slanted_text_comes_back_as_polygons_along_it(client, image_server):
    flat, _ = draw_page(["SLANTED TEXT"], font_size=48, margin=80)
    angle = 12
    tilted = flat.rotate(angle, expand=True, fillcolor="white", resample=Image.BICUBIC)
    url = image_server.put("slanted.png", tilted)
    (prediction,) = client.post("/predict", json=ls_predict_body(url)).json()["results"]
    found = regions(prediction)
    # EasyOCR does not merge slanted boxes into lines: each word is its own region.
    assert set(found) == {"SLANTED", "TEXT"}
    for region in found.values():
        assert set(region) == {"polygon", "labels", "textarea"}
        p0, p1 = region["polygon"]["value"]["points"][:2]
        dx, dy = (p1[0] - p0[0]) * tilted.width, (p1[1] - p0[1]) * tilted.height
        assert math.degrees(math.atan2(dy, dx)) == pytest.approx(-angle, abs=3)


def test_score_threshold_drops_lines_below_it(settings, client_for, image_server):
    url = image_server.put("threshold.png", draw_page(["KEEP ME"])[0])
    with client_for(settings, score_threshold=1.0) as strict_client:
        (prediction,) = strict_client.post("/predict", json=ls_predict_body(url)).json()["results"]
    assert prediction["result"] == []


def test_setup_answers_the_model_version_that_predictions_carry(client):
    setup = client.post(
        "/setup",
        json={"project": "1.1763892800", "schema": OCR_TEMPLATE, "hostname": "http://localhost:8080",
              "access_token": "abc", "extra_params": None},
    )  # fmt: skip
    assert setup.status_code == 200
    version = setup.json()["model_version"]
    assert client.get("/versions").json() == {"versions": [version]}
    health = client.get("/health").json()
    assert health["model_version"] == version
    assert health["model_class"] == "EasyOCR"  # the engine's name, as Label Studio shows it


def test_model_version_changes_with_settings_that_change_the_output(settings, client_for):
    def version_of(**update) -> str:
        with client_for(settings, **update) as c:
            return c.get("/versions").json()["versions"][0]

    base = version_of()
    assert version_of() == base
    assert version_of(score_threshold=0.5) != base
    assert version_of(height_ths=0.8) != base
    assert version_of(lang_list=("en", "de")) != base


def test_predict_without_label_config_uses_what_setup_sent(client, image_server):
    url = image_server.put("after-setup.png", draw_page(["REMEMBERED"])[0])
    client.post("/setup", json={"project": "7.1", "schema": OCR_TEMPLATE})
    body = {"tasks": [{"id": 1, "data": {"ocr": url}}], "project": "7.1"}
    (prediction,) = client.post("/predict", json=body).json()["results"]
    assert list(regions(prediction)) == ["REMEMBERED"]


@pytest.mark.parametrize(
    ("config", "advice"),
    [
        (
            "<View><Text name='t' value='$text'/></View>",
            'Add one, e.g. <Image name="image" value="$ocr"/>',
        ),
        (
            OCR_TEMPLATE.replace('perRegion="true"', ""),
            'Add <TextArea name="transcription" toName="image" perRegion="true"',
        ),
    ],
)
def test_setup_refuses_a_config_it_cannot_serve_and_says_what_to_add(client, config, advice):
    response = client.post("/setup", json={"project": "2.1", "schema": config})
    assert response.status_code == 400
    assert advice in response.json()["detail"]


def test_setup_refuses_a_label_mapping_to_a_label_the_config_lacks(settings, client_for, tmp_path):
    mapping = tmp_path / "mapping.json"
    mapping.write_text('{"Text": "Printed"}')
    with client_for(settings, label_mappings_file=mapping) as c:
        response = c.post("/setup", json={"project": "3.1", "schema": OCR_TEMPLATE})
    assert response.status_code == 400
    assert (
        'maps "Text" to "Printed", which is not a label in this config' in response.json()["detail"]
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "tasks"),
        ({"tasks": []}, "tasks"),
        ({"tasks": [{"id": 1}]}, "data"),
        ({"tasks": "all"}, "tasks"),
        ({"tasks": [{"id": 2**63, "data": {"ocr": "x.png"}}]}, "id"),  # over 64 bits (fuzzer)
    ],
)
def test_a_body_that_is_not_a_predict_request_is_a_422_naming_the_field(client, body, field):
    response = client.post("/predict", json=body)
    assert response.status_code == 422
    assert field in {str(part) for error in response.json()["detail"] for part in error["loc"]}


@pytest.mark.parametrize(
    "body",
    [
        '{"tasks": [{"data": {"ocr": ' + "[" * 100_000 + "]" * 100_000 + "}}]}",  # too deep
        '{"tasks": [{"id": ' + "9" * 5_000 + ', "data": {}}]}',  # 5,000 digits
    ],
)
def test_json_that_python_cannot_hold_is_a_400_not_a_500(client, body):
    # /predict's body is parsed by the service itself (http/predict_body.py): what
    # FastAPI answered with a 400 stays a 400 (a first version of it answered 500).
    response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text[:200]
    assert "send UTF-8 JSON" in response.json()["detail"]


def test_every_route_with_a_body_answers_400_to_bytes_that_are_not_text_and_documents_it(client):
    # The fuzzer once found /train answering an undocumented 400 (b"\xff" as the body).
    paths = client.get("/openapi.json").json()["paths"]
    with_body = sorted(
        (path, method)
        for path, methods in paths.items()
        for method, operation in methods.items()
        if "requestBody" in operation
    )
    assert ("/predict", "post") in with_body and ("/train", "post") in with_body
    for path, method in with_body:
        response = client.request(
            method, path, content=b"\xff", headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, path
        assert "send UTF-8 JSON" in response.json()["detail"], path
        assert "400" in paths[path][method]["responses"], path


def test_webhook_acknowledges_an_annotation_event_and_does_nothing(client):
    response = client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 1}})
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


class TestBasicAuth:
    @pytest.fixture(scope="class")
    def guarded(self, settings, client_for):
        with client_for(settings, basic_auth_user="ann", basic_auth_pass="s3cret") as c:
            yield c

    @pytest.mark.parametrize(
        "path", ["/", "/health", "/versions", "/docs", "/openapi.json", "/metrics"]
    )
    def test_every_route_asks_for_credentials(self, guarded, path):
        response = guarded.get(path)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Basic")

    @pytest.mark.parametrize("auth", [("ann", "wrong"), ("bob", "s3cret"), ("ann", "")])
    def test_wrong_credentials_are_refused(self, guarded, auth):
        assert guarded.get("/health", auth=auth).status_code == 401
        assert guarded.post("/setup", auth=auth, json={"schema": OCR_TEMPLATE}).status_code == 401

    def test_right_credentials_pass(self, guarded):
        assert guarded.get("/health", auth=("ann", "s3cret")).json()["status"] == "UP"
        setup = guarded.post("/setup", auth=("ann", "s3cret"), json={"schema": OCR_TEMPLATE})
        assert setup.status_code == 200

    def test_without_auth_settings_no_credentials_are_needed(self, client):
        assert client.get("/health").status_code == 200
