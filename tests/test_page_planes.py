"""Pages decode to the colour and the grey EasyOCR would read from the file, turned as shown.

Pure decoding and cropping, no OCR: the reading itself is tested on real
photos in test_real_photos.py.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from ocr_backend.images.crop import Area, crop_rectangle
from ocr_backend.images.decode import decode_page
from ocr_backend.images.planes import colour, grey
from ocr_backend.ocr.ink import ink_mask, line_box, one_line
from tests.support.photos import DIAGRAM, STREET_SIGNS, encoded, stored_turned

LIMIT = 50_000_000


def test_a_jpeg_gives_pillows_colour_and_opencvs_grey_of_the_same_bytes():
    data = DIAGRAM.read_bytes()
    page = decode_page(data, max_pixels=LIMIT)
    assert (colour(page) == np.asarray(Image.open(DIAGRAM).convert("RGB"))).all()
    assert (grey(page) == cv2.imread(str(DIAGRAM), cv2.IMREAD_GRAYSCALE)).all()
    # The JPEG's own luma, not the grey of its decoded colour: they differ.
    assert (grey(page) != cv2.cvtColor(colour(page), cv2.COLOR_RGB2GRAY)).any()


def test_an_rgba_png_keeps_its_colours_with_alpha_dropped_as_easyocr_reads_it():
    page = decode_page(STREET_SIGNS.read_bytes(), max_pixels=LIMIT)
    rgba = np.asarray(Image.open(STREET_SIGNS))
    assert (rgba[:, :, 3] < 255).any()  # some pixels are partly see-through
    assert (colour(page) == rgba[:, :, :3]).all()
    assert (grey(page) == cv2.imread(str(STREET_SIGNS), cv2.IMREAD_GRAYSCALE)).all()


def test_wholly_see_through_pixels_are_white_in_colour_and_grey():
    clear = np.zeros((20, 30, 4), dtype=np.uint8)  # black, and wholly see-through
    clear[5:15, 5:25] = (0, 0, 0, 255)  # an opaque black bar
    page = decode_page(encoded(Image.fromarray(clear, "RGBA"), "PNG"), max_pixels=LIMIT)
    assert (page[0, 0] == 255).all() and (page[10, 10] == 0).all()


def test_an_exif_turned_photo_turns_colour_and_grey_alike():
    upright = Image.open(DIAGRAM).convert("RGB")
    turned = decode_page(stored_turned(upright, "PNG"), max_pixels=LIMIT)
    assert (turned == decode_page(encoded(upright, "PNG"), max_pixels=LIMIT)).all()
    jpeg = decode_page(stored_turned(upright, "JPEG", quality=90), max_pixels=LIMIT)
    assert jpeg.shape == (upright.height, upright.width, 4)
    # The grey is the turned photo's own, as OpenCV reads it turned by its EXIF.
    from_opencv = cv2.imdecode(
        np.frombuffer(stored_turned(upright, "JPEG", quality=90), np.uint8),
        cv2.IMREAD_GRAYSCALE,
    )
    assert (grey(jpeg) == from_opencv).all()


def white_on_blue_line(cut_neighbour: bool) -> np.ndarray:
    """A blue sign with a white line of text, as a region drawn around it; its page."""
    image = np.zeros((80, 200, 3), dtype=np.uint8)
    image[:] = (20, 60, 160)
    for left in range(20, 176, 6):  # letters: white strokes with a bar at the top, as a T
        image[30:50, left + 1] = 255
        image[30:32, left : left + 3] = 255
    if cut_neighbour:
        image[10:14, 20:180:6] = 255  # the bottom of the line above, cut by the box
    return image


def test_white_text_on_blue_reads_as_one_line_without_a_white_frame():
    image = white_on_blue_line(cut_neighbour=False)
    cut = crop_rectangle(image, {"x": 5, "y": 20, "width": 90, "height": 55, "rotation": 0})
    assert cut is not None
    crop = cut.image
    planes = np.dstack((crop, cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)))
    ink = ink_mask(grey(planes))
    rows = one_line(ink, Area(0, ink.shape[0], 0, ink.shape[1]))
    assert rows is not None and rows.stop - rows.start == 20  # the letters, not a frame
    assert ink[0].sum() == 0 and ink[:, 0].sum() == 0  # the margin is no ink


def test_a_neighbours_piece_cut_by_the_box_is_left_out_of_the_line():
    image = white_on_blue_line(cut_neighbour=True)
    # The box starts at row 11, cutting through the piece at rows 10-14.
    cut = crop_rectangle(image, {"x": 5, "y": 13.75, "width": 90, "height": 60, "rotation": 0})
    assert cut is not None
    crop = cut.image
    margin = (crop.shape[0] - 48) // 2
    ink = ink_mask(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY))
    drawn = Area(margin, crop.shape[0] - margin, margin, crop.shape[1] - margin)
    assert cut.drawn == drawn  # the crop says where the box lies
    rows = one_line(ink, drawn)
    assert rows is not None and rows.stop - rows.start == 20
    left, right, top, bottom = line_box(ink, rows, drawn)
    assert top > margin + 3  # the box holds the line, not the piece above it
