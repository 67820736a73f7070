"""Cutting a drawn region out of the page (crop.py) and reading it (ocr/drawn.py, through OcrEngine.read_region)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from PIL import Image

from ocr_backend.images.crop import Area, Crop, crop_polygon, crop_rectangle, crop_region, pad
from ocr_backend.ocr.drawn import detection_scale
from tests.support.drawing import draw_page
from tests.support.photos import DIAGRAM, SCREENSHOT, STREET_SIGNS, light_on_dark


def inside(crop: Crop) -> np.ndarray:
    """The drawn region's own pixels in a padded crop."""
    return crop.image[crop.drawn.top : crop.drawn.bottom, crop.drawn.left : crop.drawn.right]


def page(width: int = 200, height: int = 100) -> np.ndarray:
    return np.full((height, width, 3), 255, dtype=np.uint8)


def test_an_upright_rectangle_is_cut_out_exactly_with_a_margin_of_its_own_edge():
    image = page()
    image[20:40, 50:150] = (10, 20, 30)  # dark paper
    image[28:32, 60:140] = 255  # light text on it
    crop = crop_rectangle(image, {"x": 25, "y": 20, "width": 50, "height": 20, "rotation": 0})
    assert crop is not None
    margin = crop.drawn.top
    assert margin >= 8 and crop.image.shape == (20 + 2 * margin, 100 + 2 * margin, 3)
    assert crop.drawn == (margin, margin + 20, margin, margin + 100)
    assert (inside(crop) == image[20:40, 50:150]).all()
    frame = crop.image.copy()
    frame[margin:-margin, margin:-margin] = (10, 20, 30)
    assert (frame == (10, 20, 30)).all()  # no white frame around light text


def test_a_rotated_rectangle_comes_out_upright():
    # A 60x10 region turned 90 degrees clockwise about its top-left corner (100, 10)
    # covers x 90..100, y 10..70 on the page; a 60x4 bar runs down its middle.
    image = page()
    image[10:70, 93:97] = 0
    value = {"x": 50, "y": 10, "width": 30, "height": 10, "rotation": 90}
    crop = crop_rectangle(image, value)
    assert crop is not None
    dark = (inside(crop) < 128).all(axis=2)
    rows, columns = np.flatnonzero(dark.any(axis=1)), np.flatnonzero(dark.any(axis=0))
    assert len(rows) <= 5 and len(columns) >= 58  # long side along the text again


def test_a_polygon_is_cut_out_by_its_bounding_box_as_the_photo_has_it():
    image = page()
    image[45:55, :] = 0  # a stripe across the page, inside and outside the triangle
    # The triangle (20, 10), (120, 10), (20, 90) in pixels; its bounding box is (20, 10)-(120, 90).
    crop = crop_polygon(image, [[10, 10], [60, 10], [10, 90]])
    assert crop is not None
    # Nothing painted over: what lies outside the polygon is as a user's saved crop has it.
    assert (inside(crop) == image[10:90, 20:120]).all()


def test_regions_without_pixels_are_none():
    image = page()
    assert crop_region(image, {"x": 120, "y": 0, "width": 10, "height": 10}) is None
    assert crop_region(image, {"x": -30, "y": 0, "width": 10, "height": 10}) is None
    assert crop_region(image, {"x": 10, "y": 10, "width": 0, "height": 10}) is None
    assert crop_region(image, {"points": [[110, 10], [120, 10], [120, 20]]}) is None
    assert crop_region(image, {"points": [[10, 10], [20, 20]]}) is None


def test_a_region_partly_outside_the_image_is_clipped_to_it_and_framed_in_its_own_colour():
    image = page()
    image[:, :] = (0, 0, 128)  # a blue sign filling the picture
    crop = crop_rectangle(image, {"x": 90, "y": 0, "width": 20, "height": 50})
    assert crop is not None
    margin = crop.drawn.top
    # Only the half on the image is cut (issue: a region 60 times the image cost 5 GB).
    assert crop.image.shape[:2] == (50 + 2 * margin, 20 + 2 * margin)
    assert (crop.image == (0, 0, 128)).all()  # no white frame where the image ends


async def test_read_region_reads_one_line_several_lines_and_nothing(engine):
    one, _ = draw_page(["Order 4711"], font_size=44)
    two, _ = draw_page(["Order 4711", "Berlin"], font_size=44)
    blank = page()
    assert [line.text for line in await engine.read_region(pad(np.asarray(one)))] == ["Order 4711"]
    assert [line.text for line in await engine.read_region(pad(np.asarray(two)))] == [
        "Order 4711",
        "Berlin",
    ]
    assert await engine.read_region(pad(blank)) == []


async def test_a_lone_small_character_is_still_read(engine):
    image, (line,) = draw_page(["7"], font_size=16, margin=6)
    lines = await engine.read_region(pad(np.asarray(image)))
    assert [line.text for line in lines] == ["7"]


def test_an_upright_box_at_a_fraction_of_a_pixel_is_cut_on_whole_pixels():
    """Sampling between pixels blurs small text: 9-pixel `Pre-Process` read `Pra-Procoss`."""
    image = np.random.default_rng(0).integers(0, 256, (100, 200, 3), dtype=np.uint8)
    crop = crop_rectangle(image, {"x": 10.13, "y": 20.41, "width": 30.2, "height": 40.3})
    assert crop is not None
    left, top = round(0.1013 * 200), round(0.2041 * 100)
    inner = inside(crop)
    assert (inner == image[top : top + inner.shape[0], left : left + inner.shape[1]]).all()


# Boxes drawn loosely on real pages (tests/images/), where the fast one-line path once
# read what lay beside the line as a character.
def _region_text(engine, image: np.ndarray, value: dict) -> str:
    crop = crop_region(image, value)
    assert crop is not None
    return " ".join(line.text for line in asyncio.run(engine.read_region(crop)))


def test_a_labels_colour_bar_before_its_name_is_not_read_as_a_letter(engine):
    """Label Studio's own screenshot: a red bar, then `Car`; a green one, then `Opossum`."""
    screenshot = np.asarray(Image.open(SCREENSHOT).convert("RGB"))
    car = {"x": 86.3218, "y": 63.5736, "width": 1.9436, "height": 3.4924, "rotation": 0}
    opossum = {"x": 86.3218, "y": 85.0964, "width": 3.8036, "height": 2.6802, "rotation": 0}
    assert _region_text(engine, screenshot, car) == "Car"  # was `| Car`
    assert _region_text(engine, screenshot, opossum) == "Opossum"  # was `| Opossum`


def test_a_dot_the_box_cut_off_a_neighbour_does_not_start_the_line(engine):
    """Dark mode: a box around `0.82` whose left edge cuts a speck of the word before it."""
    dark = np.asarray(light_on_dark(Image.open(SCREENSHOT).convert("RGB")))
    value = {"x": 94.4619, "y": 74.8020, "width": 2.2309, "height": 3.0558, "rotation": 0}
    assert _region_text(engine, dark, value) == "0.82"  # was `70.82`


def test_small_text_in_a_frame_reads_as_readtext_reads_it(engine):
    """The diagram's 9-pixel `Pre-Process` inside its rounded frame."""
    diagram = np.asarray(Image.open(DIAGRAM).convert("RGB"))
    value = {"x": 13.4, "y": 30.5333, "width": 8.62, "height": 12.9, "rotation": 0}
    assert _region_text(engine, diagram, value) == "Pre-Process"  # was `Pra-Procoss`


def test_tiny_text_in_a_loose_or_turned_box_is_read_as_readtext_reads_the_crop(engine):
    """Street signs' 10-pixel coordinates: the replicated margin smeared them out of detection.

    Both boxes read as nothing before, where readtext on the crop saved as a file reads
    `79],` and `[475`."""
    signs = np.asarray(Image.open(STREET_SIGNS).convert("RGB"))
    loose = {"x": 47.7564, "y": 65.0333, "width": 2.8509, "height": 4.2667, "rotation": 0}
    turned = {"x": 44.4794, "y": 45.4330, "width": 3.9704, "height": 5.8564, "rotation": 357.0}
    assert _region_text(engine, signs, loose).startswith("79]")
    assert _region_text(engine, signs, turned) == "[475"


def test_a_tiny_line_in_a_box_cutting_into_its_neighbour_is_read_whole_and_alone(engine):
    """Street signs' 10-pixel `.9718757271766663)`, in a box that cuts halfway into the line
    above: detection in the padded crop found only `666_` of it (readtext on the crop saved
    as a file reads it all). A polygon around it leaves out the neighbour's piece that
    readtext on the crop reads as `SeeeMaoo`."""
    signs = np.asarray(Image.open(STREET_SIGNS).convert("RGB"))
    cut = {"x": 73.3927, "y": 63.4333, "width": 13.0327, "height": 5.8667, "rotation": 0}
    assert _region_text(engine, signs, cut) == ".9718757271766663)"
    polygon = {
        "points": [
            [73.3927, 65.0333],
            [79.9091, 64.6333],
            [86.4255, 65.0333],
            [86.4255, 69.3],
            [79.9091, 69.7],
            [73.3927, 69.3],
        ]
    }
    crop = crop_region(signs, polygon)
    assert crop is not None
    texts = [line.text for line in asyncio.run(engine.read_region(crop))]
    assert len(texts) == 1 and texts[0].startswith("9718757271766663"), texts


def test_a_polygon_around_a_tiny_word_keeps_its_first_character(engine):
    """Street signs' 10-pixel `[292` in a loose polygon: detection in the drawn area alone
    finds the word as a box taller than the row the padded crop found it on (its margin
    reaches the polygon's edges), and that box was dropped as a neighbour's piece; what
    the padded crop found read `292`. readtext on the crop saved as a file reads `[292`."""
    signs = np.asarray(Image.open(STREET_SIGNS).convert("RGB"))
    polygon = {
        "points": [
            [43.7236, 64.6],
            [45.4545, 64.15],
            [47.1855, 64.6],
            [47.1855, 69.4],
            [45.4545, 69.85],
            [43.7236, 69.4],
        ]
    }
    assert _region_text(engine, signs, polygon) == "[292"


def test_a_padded_crop_says_where_the_users_region_lies_in_it():
    """On plain paper the margin and the box's own blank edge look alike; the crop tells."""
    rng = np.random.default_rng(0)
    for height in (3, 10, 22, 23, 50, 91, 92, 400):
        for width in (3, 17, 60, 1000):
            crop = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            padded = pad(crop)
            margin = (padded.image.shape[0] - height) // 2
            assert margin >= 8
            assert padded.image.shape[:2] == (height + 2 * margin, width + 2 * margin)
            assert padded.drawn == Area(margin, margin + height, margin, margin + width)
            top, bottom, left, right = padded.drawn
            assert (padded.image[top:bottom, left:right] == crop).all()


async def test_a_capital_i_first_on_a_line_on_plain_paper_is_read(engine):
    """A box with a blank margin of its own around `INVOICE 2024`: the I is no cut sliver."""
    image, lines = draw_page(["HELLO WORLD", "INVOICE 2024"])
    left, top, right, bottom = lines[1].box
    width, height = image.size
    value = {  # 12 pixels of blank paper around the line, as Label Studio's tests draw it
        "x": (left - 12) / width * 100,
        "y": (top - 12) / height * 100,
        "width": (right - left + 24) / width * 100,
        "height": (bottom - top + 24) / height * 100,
    }
    crop = crop_region(np.asarray(image.convert("RGB")), value)
    assert crop is not None
    assert [line.text for line in await engine.read_region(crop)] == ["INVOICE 2024"]


class DetectorInputs:
    """Wraps the reader's real detector network and notes the size of each picture it gets."""

    def __init__(self, net: Any) -> None:
        self.net = net
        self.sizes: list[tuple[int, int]] = []

    def __call__(self, x: Any) -> Any:
        self.sizes.append(tuple(x.shape[2:]))
        return self.net(x)


async def _detector_sizes(engine, crop: Crop) -> tuple[list[str], list[tuple[int, int]]]:
    """What the engine reads in `crop`, and the picture sizes its detector was given."""
    easyocr = engine.reader.easyocr
    inputs = DetectorInputs(easyocr.detector)
    easyocr.detector = inputs
    try:
        lines = await engine.read_region(crop)
    finally:
        easyocr.detector = inputs.net
    return [line.text for line in lines], inputs.sizes


async def test_a_box_of_large_text_is_detected_at_a_reduced_scale_and_still_read(engine):
    """Detection costs in proportion to its picture's pixels: a one-line box around
    120-pixel text on a sign photo took 0.7 s at full size. Its shorter side is brought
    down to DETECT_SIDE for detection; what was found is recognised at full size."""
    image, _ = draw_page(["SLOW DOWN"], font_size=120)
    crop = pad(np.asarray(image))
    texts, sizes = await _detector_sizes(engine, crop)
    assert texts == ["SLOW DOWN"]
    height, width = crop.image.shape[:2]
    scale = detection_scale(crop.drawn)
    assert scale < 0.5
    # EasyOCR pads the resized picture to a multiple of 32 pixels.
    assert sizes == [(_up_to_32(int(height * scale)), _up_to_32(int(width * scale)))]


async def test_a_box_of_small_text_is_detected_at_its_own_size(engine):
    image, _ = draw_page(["Order 4711"], font_size=20, margin=8)
    crop = pad(np.asarray(image))
    texts, sizes = await _detector_sizes(engine, crop)
    assert texts == ["Order 4711"]
    assert detection_scale(crop.drawn) == 1.0
    height, width = crop.image.shape[:2]
    top, bottom, left, right = crop.drawn
    # The padded crop, then the drawn area alone (what readtext gets from the crop's file),
    # each at its own size.
    assert sizes == [
        (_up_to_32(height), _up_to_32(width)),
        (_up_to_32(bottom - top), _up_to_32(right - left)),
    ]


def _up_to_32(pixels: int) -> int:
    return -(-pixels // 32) * 32
