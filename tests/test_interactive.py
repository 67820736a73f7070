"""Interactive pre-annotation: the user draws a region, the backend reads the text inside it.

Bodies are shaped as Label Studio 1.23 sends them (docs/label-studio.md): one task and
`params.context = {"result": [<what the user drew>]}`. Real EasyOCR reads
pages drawn with Pillow, served by a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import math

import pytest
from PIL import Image

from ocr_backend.label_studio.regions import drawn_regions, reading_order
from ocr_backend.ocr.lines import TextLine
from tests.support.drawing import draw_page
from tests.support.label_studio import drawn_rectangle, ls_predict_body

PAGE_LINES = ["SHIPPING LABEL", "Order 4711", "Berlin"]


@pytest.fixture(scope="module")
def page(image_server):
    image, drawn = draw_page(PAGE_LINES, font_size=44, gap=50)
    return image_server.put("interactive-page.png", image), image, drawn


def around(box, margin: float = 8) -> tuple[float, float, float, float]:
    """A user's box is never tight: a few pixels of white around the text."""
    left, top, right, bottom = box
    return left - margin, top - margin, right + margin, bottom + margin


def interactive(client, url: str, *regions: dict) -> dict:
    body = ls_predict_body(url)
    body["params"]["context"] = {"result": list(regions)}
    response = client.post("/predict", json=body)
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["results"]
    assert "error" not in prediction
    return prediction


def texts(prediction: dict) -> dict[str, str]:
    """{region id: its text}."""
    return {
        item["id"]: "\n".join(item["value"]["text"])
        for item in prediction["result"]
        if item["type"] == "textarea"
    }


def test_a_box_around_line_two_reads_exactly_line_two(client, page):
    url, image, drawn = page
    drawn_box = drawn_rectangle(around(drawn[1].box), image.size)
    prediction = interactive(client, url, drawn_box)
    assert texts(prediction) == {"user-box-1": "Order 4711"}
    assert len(prediction["result"]) == 2  # the user's rectangle and its text: nothing else
    assert prediction["score"] > 0.3


def test_the_users_id_geometry_and_labels_come_back_unchanged(client, page):
    url, image, drawn = page
    shape = drawn_rectangle(around(drawn[0].box), image.size, region_id="Xy7_kLmN0q")
    label = {**shape, "from_name": "label", "type": "labels",
             "value": {**shape["value"], "labels": ["Handwriting"]}}  # fmt: skip
    prediction = interactive(client, url, shape, label)
    geometry, labels, textarea = prediction["result"]
    assert geometry == shape and labels == label
    assert textarea == {
        "id": "Xy7_kLmN0q",
        "from_name": "transcription",
        "to_name": "image",
        "type": "textarea",
        "original_width": image.width,
        "original_height": image.height,
        "image_rotation": 0,
        "value": {**shape["value"], "text": ["SHIPPING LABEL"]},
    }


def test_a_box_over_two_lines_reads_them_top_to_bottom_one_per_line(client, page):
    url, image, drawn = page
    left, top, _, _ = drawn[0].box
    _, _, right, bottom = drawn[1].box
    right = max(right, drawn[0].box[2])
    prediction = interactive(
        client, url, drawn_rectangle(around((left, top, right, bottom)), image.size)
    )
    assert texts(prediction) == {"user-box-1": "SHIPPING LABEL\nOrder 4711"}


def test_a_polygon_reads_the_text_inside_it(client, page):
    url, image, drawn = page
    left, top, right, bottom = around(drawn[2].box, 10)
    width, height = image.size
    corners = [(left - 6, top), (right, top - 4), (right + 6, bottom), (left, bottom + 4)]
    polygon = {
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": {"points": [[x / width * 100, y / height * 100] for x, y in corners],
                  "closed": True},
        "id": "poly-1",
        "from_name": "poly",
        "to_name": "image",
        "type": "polygon",
        "origin": "manual",
    }  # fmt: skip
    prediction = interactive(client, url, polygon)
    assert texts(prediction) == {"poly-1": "Berlin"}
    assert prediction["result"][0] == polygon
    assert prediction["result"][1]["value"] == {**polygon["value"], "text": ["Berlin"]}


def test_two_boxes_in_one_context_each_get_their_own_text(client, page):
    url, image, drawn = page
    first = drawn_rectangle(around(drawn[0].box), image.size, region_id="first")
    third = drawn_rectangle(around(drawn[2].box), image.size, region_id="third")
    prediction = interactive(client, url, first, third)
    assert texts(prediction) == {"first": "SHIPPING LABEL", "third": "Berlin"}
    assert [item["id"] for item in prediction["result"]] == ["first", "first", "third", "third"]


def test_an_empty_box_and_a_box_outside_the_image_get_empty_text(client, page):
    url, image, drawn = page
    width, height = image.size
    below_text = (10, drawn[2].box[3] + 10, width - 10, height - 2)
    blank = drawn_rectangle(below_text, image.size, region_id="blank")
    outside = drawn_rectangle((width + 50, 10, width + 300, 60), image.size, region_id="outside")
    prediction = interactive(client, url, blank, outside)
    assert texts(prediction) == {"blank": "", "outside": ""}
    assert prediction["score"] == 0.0


def test_a_rotated_rectangle_around_rotated_text_reads_it(client, image_server):
    flat, (line,) = draw_page(["TURNED TEXT"], font_size=44, margin=60)
    angle = 30  # Label Studio's rotation: degrees clockwise about the top-left corner
    turned = flat.rotate(-angle, expand=True, fillcolor="white", resample=Image.BICUBIC)
    page = Image.new("RGB", (turned.width, turned.height + 120), "white")
    page.paste(turned, (0, 0))
    other, _ = draw_page(["OTHER LINE"], font_size=44, margin=10)
    page.paste(other, (10, turned.height + 10))
    url = image_server.put("turned.png", page)

    def turn(x: float, y: float) -> tuple[float, float]:
        """Where a point of `flat` lands in `turned` (Pillow turns about the centre)."""
        t = math.radians(angle)
        dx, dy = x - flat.width / 2, y - flat.height / 2
        return (dx * math.cos(t) - dy * math.sin(t) + turned.width / 2,
                dx * math.sin(t) + dy * math.cos(t) + turned.height / 2)  # fmt: skip

    left, top, right, bottom = around(line.box)
    corner_x, corner_y = turn(left, top)
    box = drawn_rectangle((corner_x, corner_y, corner_x + right - left, corner_y + bottom - top),
                    page.size, rotation=angle)  # fmt: skip
    prediction = interactive(client, url, box)
    assert texts(prediction) == {"user-box-1": "TURNED TEXT"}
    assert prediction["result"][1]["value"]["rotation"] == angle


def test_the_second_call_on_the_same_image_does_not_fetch_it_again(client, image_server):
    image, drawn = draw_page(["FETCH ONCE", "Second box"], font_size=44, gap=50)
    url = image_server.put("fetch-once.png", image)

    def fetches() -> int:
        return sum(path == "/fetch-once.png" for path, _ in image_server.requests)

    first = interactive(client, url, drawn_rectangle(around(drawn[0].box), image.size))
    assert fetches() == 1
    second = interactive(client, url, drawn_rectangle(around(drawn[1].box), image.size))
    assert fetches() == 1
    assert (texts(first), texts(second)) == (
        {"user-box-1": "FETCH ONCE"},
        {"user-box-1": "Second box"},
    )


def test_a_context_without_an_area_returns_no_regions(client, page):
    url, image, _ = page
    keypoint = {**drawn_rectangle((10, 10, 20, 20), image.size), "type": "keypointlabels",
                "value": {"x": 5, "y": 5, "width": 1, "keypointlabels": ["Text"]}}  # fmt: skip
    assert interactive(client, url, keypoint)["result"] == []


def test_an_unreachable_image_is_an_error_in_the_prediction_not_a_failure(client, image_server):
    body = ls_predict_body(image_server.url("missing-interactive.png"))
    body["params"]["context"] = {"result": [drawn_rectangle((0, 0, 10, 10), (100, 100))]}
    (prediction,) = client.post("/predict", json=body).json()["results"]
    assert "result" not in prediction and prediction["status"] == "failed"
    assert "HTTP 404" in prediction["error"]


# --- reading the context and ordering the lines, without OCR --------------------


def test_no_context_or_an_empty_one_is_not_interactive():
    assert drawn_regions(None) is None
    assert drawn_regions({}) is None
    assert drawn_regions({"result": []}) is None


def test_items_of_one_region_are_grouped_and_broken_shapes_skipped():
    shape = drawn_rectangle((0, 0, 10, 10), (100, 100), region_id="r")
    label = {**shape, "type": "labels", "from_name": "label",
             "value": {**shape["value"], "labels": ["Text"]}}  # fmt: skip
    broken = {**shape, "id": "b", "value": {"x": "left", "y": 0, "width": 1, "height": 1}}
    (region,) = drawn_regions({"result": [shape, label, broken]})
    assert region.id == "r" and region.items == (shape, label)
    assert region.geometry == shape["value"]


def line(text: str, left: float, top: float, right: float, bottom: float) -> TextLine:
    return TextLine(((left, top), (right, top), (right, bottom), (left, bottom)), text, 0.9)


def test_reading_order_is_top_to_bottom_then_left_to_right():
    found = [
        line("world", 120, 2, 200, 30),
        line("second", 0, 50, 100, 80),
        line("hello", 0, 0, 100, 32),
    ]
    assert reading_order(found) == "hello world\nsecond"
    assert reading_order([]) == ""
