"""Cutting a drawn region out of the page (crop.py) and reading it (OcrEngine.read_region)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ocr_backend.images.crop import crop_polygon, crop_rectangle, crop_region
from ocr_backend.ocr.ink import ink_mask as _ink
from ocr_backend.ocr.ink import is_one_line as _is_one_line
from tests.support.drawing import draw_page


def page(width: int = 200, height: int = 100) -> np.ndarray:
    return np.full((height, width, 3), 255, dtype=np.uint8)


def unpadded(crop: np.ndarray) -> np.ndarray:
    """The crop without its white margin: the rows and columns that are not all white."""
    rows = np.flatnonzero((crop < 255).any(axis=(1, 2)))
    cols = np.flatnonzero((crop < 255).any(axis=(0, 2)))
    return crop[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def test_an_upright_rectangle_is_cut_out_exactly_with_a_white_margin():
    image = page()
    image[20:40, 50:150] = (10, 20, 30)
    crop = crop_rectangle(image, {"x": 25, "y": 20, "width": 50, "height": 20, "rotation": 0})
    assert crop.shape[0] > 20 and crop.shape[1] > 100  # padded
    inner = unpadded(crop)
    assert inner.shape == (20, 100, 3) and (inner == (10, 20, 30)).all()


def test_a_rotated_rectangle_comes_out_upright():
    # A 60x10 bar turned 90 degrees clockwise about its top-left corner (100, 10)
    # covers x 90..100, y 10..70 on the page.
    image = page()
    image[10:70, 90:100] = 0
    value = {"x": 50, "y": 10, "width": 30, "height": 10, "rotation": 90}
    inner = unpadded(crop_rectangle(image, value))
    assert inner.shape[:2] == (10, 60)  # long side along the text again
    assert (inner < 128).mean() > 0.95


def test_a_polygon_keeps_only_what_is_inside_it():
    image = page()
    image[:, :] = 0  # all ink: whatever survives the cut lies inside the triangle
    crop = crop_polygon(image, [[10, 10], [60, 10], [10, 90]])
    inner = unpadded(crop)
    dark = inner < 128
    assert dark[0, 0].all() and not dark[-1, -1].any()  # the corner outside is white
    assert 0.4 < dark[..., 0].mean() < 0.6  # half the bounding box is the triangle


def test_regions_without_pixels_are_none():
    image = page()
    assert crop_region(image, {"x": 120, "y": 0, "width": 10, "height": 10}) is None
    assert crop_region(image, {"x": -30, "y": 0, "width": 10, "height": 10}) is None
    assert crop_region(image, {"x": 10, "y": 10, "width": 0, "height": 10}) is None
    assert crop_region(image, {"points": [[110, 10], [120, 10], [120, 20]]}) is None
    assert crop_region(image, {"points": [[10, 10], [20, 20]]}) is None


def test_a_region_partly_outside_the_image_is_white_there():
    image = page()
    image[:, :] = 0
    crop = crop_rectangle(image, {"x": 90, "y": 0, "width": 20, "height": 50})
    inner = unpadded(crop)
    assert inner.shape[:2] == (50, 20)  # half of the 40 pixels wide region is off the page


def test_one_line_is_told_apart_from_several():
    one, _ = draw_page(["One line only"], font_size=40)
    two, _ = draw_page(["First line", "Second line"], font_size=40)
    assert _is_one_line(_ink(np.asarray(one)))
    assert not _is_one_line(_ink(np.asarray(two)))
    square = np.asarray(Image.new("RGB", (60, 60), "white"))
    square = square.copy()
    square[10:50, 10:50] = 0
    assert not _is_one_line(_ink(square))  # a block as tall as wide is not a line


async def test_read_region_reads_one_line_several_lines_and_nothing(engine):
    one, _ = draw_page(["Order 4711"], font_size=44)
    two, _ = draw_page(["Order 4711", "Berlin"], font_size=44)
    blank = page()
    assert [line.text for line in await engine.read_region(np.asarray(one))] == ["Order 4711"]
    assert [line.text for line in await engine.read_region(np.asarray(two))] == [
        "Order 4711",
        "Berlin",
    ]
    assert await engine.read_region(blank) == []


async def test_a_lone_small_character_is_still_read(engine):
    image, (line,) = draw_page(["7"], font_size=16, margin=6)
    lines = await engine.read_region(np.asarray(image))
    assert [line.text for line in lines] == ["7"]
