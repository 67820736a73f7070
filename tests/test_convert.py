"""TextLines in pixels become Label Studio regions in percent, in the shapes it accepts."""

from __future__ import annotations

import math

import pytest

from ocr_backend.convert import is_axis_aligned, lines_to_regions, rectangle_value
from ocr_backend.label_studio.config import parse_label_config
from ocr_backend.ocr.lines import TextLine
from tests.support.label_studio import OCR_TEMPLATE

UPRIGHT = TextLine(((10.0, 20.0), (110.0, 20.0), (110.0, 60.0), (10.0, 60.0)), "upright", 0.9)


def slanted(angle_deg: float, length: float = 100.0, thickness: float = 20.0) -> TextLine:
    a = math.radians(angle_deg)
    x0, y0 = 50.0, 50.0
    along = (length * math.cos(a), length * math.sin(a))
    across = (-thickness * math.sin(a), thickness * math.cos(a))
    pts = (
        (x0, y0),
        (x0 + along[0], y0 + along[1]),
        (x0 + along[0] + across[0], y0 + along[1] + across[1]),
        (x0 + across[0], y0 + across[1]),
    )
    return TextLine(pts, "slanted", 0.8)


def by_type(items):
    return {item["type"]: item for item in items}


def test_an_upright_line_is_one_region_of_rectangle_label_and_text():
    items = lines_to_regions([UPRIGHT], parse_label_config(OCR_TEMPLATE), 200, 100)
    assert [i["type"] for i in items] == ["rectangle", "labels", "textarea"]
    assert len({i["id"] for i in items}) == 1
    region = by_type(items)
    geometry = {"x": 5.0, "y": 20.0, "width": 50.0, "height": 40.0, "rotation": 0}
    assert region["rectangle"]["value"] == geometry
    assert region["labels"]["value"] == {**geometry, "labels": ["Text"]}
    assert region["textarea"]["value"] == {**geometry, "text": ["upright"]}
    for item in items:
        assert item["to_name"] == "image"
        assert (item["original_width"], item["original_height"]) == (200, 100)
    assert region["rectangle"]["from_name"] == "bbox"
    assert region["textarea"]["from_name"] == "transcription"


def test_a_slanted_line_is_a_polygon_when_the_config_has_one():
    items = lines_to_regions([slanted(20)], parse_label_config(OCR_TEMPLATE), 400, 200)
    region = by_type(items)
    assert set(region) == {"polygon", "labels", "textarea"}
    assert region["polygon"]["value"]["points"][0] == [12.5, 25.0]
    assert region["labels"]["value"]["points"] == region["polygon"]["value"]["points"]


@pytest.mark.parametrize("angle", [20.0, -15.0, 70.0])
def test_with_only_rectangle_a_slanted_line_is_a_rotated_rectangle(angle):
    config = OCR_TEMPLATE.replace('<Polygon name="poly" toName="image" strokeWidth="3"/>', "")
    line = slanted(angle)
    (rect, *_rest) = lines_to_regions([line], parse_label_config(config), 400, 200)
    value = rect["value"]
    assert rect["type"] == "rectangle"
    assert value["rotation"] == pytest.approx(angle % 360)
    assert value["x"] == pytest.approx(50 / 400 * 100)
    assert value["width"] == pytest.approx(100 / 400 * 100)
    assert value["height"] == pytest.approx(20 / 200 * 100)


def test_a_rotated_rectangle_starts_where_the_text_starts_whatever_the_corner_order():
    line = slanted(30)
    rotated = (line.polygon[2], line.polygon[3], line.polygon[0], line.polygon[1])
    assert rectangle_value(rotated, 400, 200) == pytest.approx(
        rectangle_value(line.polygon, 400, 200)
    )


def test_points_outside_the_image_are_clamped_not_dropped():
    outside = TextLine(((-5.0, -2.0), (120.0, -2.0), (120.0, 30.0), (-5.0, 30.0)), "edge", 0.5)
    config = OCR_TEMPLATE.replace('<Rectangle name="bbox" toName="image" strokeWidth="3"/>', "")
    (poly, *_rest) = lines_to_regions([outside], parse_label_config(config), 100, 100)
    assert poly["value"]["points"] == [[0.0, 0.0], [100.0, 0.0], [100.0, 30.0], [0.0, 30.0]]
    (rect, *_rest) = lines_to_regions([outside], parse_label_config(OCR_TEMPLATE), 100, 100)
    assert rect["value"]["x"] == 0 and rect["value"]["width"] == 100


def test_rectangle_labels_configs_put_the_label_on_the_geometry():
    config = """<View><Image name="image" value="$ocr"/>
      <RectangleLabels name="boxes" toName="image"><Label value="Text"/></RectangleLabels>
      <TextArea name="t" toName="image" perRegion="true"/></View>"""
    items = lines_to_regions([UPRIGHT], parse_label_config(config), 200, 100)
    assert [i["type"] for i in items] == ["rectanglelabels", "textarea"]
    assert items[0]["value"]["rectanglelabels"] == ["Text"]


def test_every_line_gets_its_own_region_id():
    items = lines_to_regions(
        [UPRIGHT, UPRIGHT, UPRIGHT], parse_label_config(OCR_TEMPLATE), 200, 100
    )
    assert len({i["id"] for i in items}) == 3


def test_axis_alignment_tolerates_a_pixel():
    assert is_axis_aligned(((0, 0), (100, 0.5), (100.4, 20), (0, 20)))
    assert not is_axis_aligned(slanted(5).polygon)
