"""Pages decode to the colour and the grey EasyOCR would read from the file, turned as shown.

Pure decoding and cropping, no OCR: the reading itself is tested on real
photos in test_real_photos.py.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from ocr_backend.images.crop import crop_rectangle
from ocr_backend.images.decode import decode_page
from ocr_backend.images.planes import colour, grey
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


def white_on_blue_line() -> np.ndarray:
    """A blue sign with a white line of text, as a region drawn around it; its page."""
    image = np.zeros((80, 200, 3), dtype=np.uint8)
    image[:] = (20, 60, 160)
    for left in range(20, 176, 6):  # letters: white strokes with a bar at the top, as a T
        image[30:50, left + 1] = 255
        image[30:32, left : left + 3] = 255
    return image


def test_white_text_on_blue_is_padded_with_its_own_blue_not_a_frame():
    image = white_on_blue_line()
    crop = crop_rectangle(image, {"x": 5, "y": 20, "width": 90, "height": 55, "rotation": 0})
    assert crop is not None
    drawn = crop.image[crop.drawn.top : crop.drawn.bottom, crop.drawn.left : crop.drawn.right]
    assert (drawn == image[16:60, 10:190]).all()  # the region itself, pixel for pixel
    margin = crop.image.copy()
    margin[crop.drawn.top : crop.drawn.bottom, crop.drawn.left : crop.drawn.right] = (20, 60, 160)
    assert (margin == (20, 60, 160)).all()  # its edge is blue: so is all of its margin
