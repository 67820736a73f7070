"""The pixels the OCR engine reads: one uint8 array of four planes, colour and grey.

EasyOCR reads an image file twice. Its text detector gets the colour
picture (RGB, alpha dropped); its recogniser gets a grey picture that
OpenCV decodes from the same file. That grey is not the grey of the colour
picture: OpenCV decodes a JPEG's luma directly and greys a PNG with libpng's
own rounding. Measured on the real photos in tests/images/, greying the
colour picture instead changed 8 of 116 texts of `street_signs.png` and one
of `label_studio_screenshot.png`; handing EasyOCR an RGB array, which it
takes for BGR, changed 28 and swapped red with blue.

So a page travels as one array, `height x width x 4`: planes 0-2 the colour
picture in RGB, plane 3 (`GREY`) the grey one. One array crops, caches and
pickles (to Ray workers) as easily as an RGB picture does, and both pictures
stay pixel for pixel aligned through every crop. This module is the one
place that knows the layout.
"""

from __future__ import annotations

import cv2
import numpy as np

GREY = 3  # index of the grey plane


def with_grey(rgb: np.ndarray, grey: np.ndarray | None = None) -> np.ndarray:
    """The four planes of an RGB picture; its grey as OpenCV greys colour when none is given."""
    if grey is None:
        grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    if grey.shape != rgb.shape[:2]:
        raise ValueError(f"grey plane {grey.shape} does not match picture {rgb.shape[:2]}")
    return np.dstack((rgb, grey)).astype(np.uint8, copy=False)


def as_planes(image: np.ndarray) -> np.ndarray:
    """Four planes from what callers hand the engine: four planes, RGB, or grey alone.

    A four-plane array is taken as colour + grey, never as RGBA: composite
    transparency before (images/decode.py does).
    """
    if image.ndim == 2:
        return np.dstack((image, image, image, image)).astype(np.uint8, copy=False)
    if image.ndim == 3 and image.shape[2] == 4:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return with_grey(image)
    raise ValueError(f"expected an RGB or colour+grey image, got an array of shape {image.shape}")


def colour(planes: np.ndarray) -> np.ndarray:
    """The RGB picture, contiguous, as EasyOCR's detector takes it."""
    return np.ascontiguousarray(planes[:, :, :GREY])


def grey(planes: np.ndarray) -> np.ndarray:
    """The grey picture, contiguous, as EasyOCR's recogniser takes it."""
    return np.ascontiguousarray(planes[:, :, GREY])
