"""A region in Label Studio's percent geometry -> an upright crop of the image, in pixels.

Label Studio's rectangle is its top-left corner (x, y), its size, and a
rotation in degrees clockwise about that corner; x and width are percent of
the image width, y and height percent of its height. A rotated rectangle is
turned upright as it is cut out, so the text in it reads left to right. A
polygon is cut out by its bounding box, as a user would save it.

The margin around the region, and what of a rotated one lies beyond the
image's edge, are the crop's own outermost pixels drawn outwards, never a
colour of its own: around white text on a blue sign a white (or
paper-coloured) frame was read as letters (`E...|`). The crop says where in
it the region lies (`Crop.drawn`): what detection finds mostly in the
margin is a neighbour the box's edge cut through (ocr/drawn.py). Pure
functions over numpy arrays of any number of planes (RGB, or images/planes.py's
colour and grey), no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import cv2
import numpy as np

MIN_SIDE_PX = 2.0  # a region thinner than this holds no text
# Percent coordinates are clamped to a thousand image sizes around the image: that changes
# nothing on the image, and keeps the arithmetic finite (Label Studio's JSON can say 1e308).
FAR_PERCENT = 100_000.0


class Area(NamedTuple):
    """Rows top..bottom and columns left..right of a crop (ends exclusive)."""

    top: int
    bottom: int
    left: int
    right: int


@dataclass(frozen=True)
class Crop:
    """A drawn region cut out upright, with a margin; `drawn` is where the region lies in it."""

    image: np.ndarray
    drawn: Area


def crop_region(image: np.ndarray, value: Mapping[str, Any]) -> Crop | None:
    """The padded upright crop of a rectangle or polygon value; None when it holds no pixels."""
    if "points" in value:
        return crop_polygon(image, value["points"])
    return crop_rectangle(image, value)


def crop_rectangle(image: np.ndarray, value: Mapping[str, Any]) -> Crop | None:
    height, width = image.shape[:2]
    x = _percent(value["x"]) / 100 * width
    y = _percent(value["y"]) / 100 * height
    w = _percent(value["width"]) / 100 * width
    h = _percent(value["height"]) / 100 * height
    degrees = _percent(value.get("rotation") or 0.0)
    angle = math.radians(degrees)
    along = (math.cos(angle), math.sin(angle))  # unit vector along the top edge
    across = (-math.sin(angle), math.cos(angle))  # unit vector down the left edge
    if degrees % 90 == 0:
        # An upright (or quarter-turned) box is cut on whole pixels: sampling between them
        # blurs small text, and the recogniser read 9-pixel `Pre-Process` as `Pra-Procoss`.
        along, across = (round(along[0]), round(along[1])), (round(across[0]), round(across[1]))
        # Each edge on the pixel boundary nearest it, as an image editor cuts the box: a
        # far edge at x + w rounded on its own, not x and w rounded apart (one pixel off,
        # which cut the `,` after 10-pixel `149]`).
        far_x = x + w * along[0] + h * across[0]
        far_y = y + w * along[1] + h * across[1]
        x, y = round(x), round(y)
        w = abs((round(far_x) - x) * along[0] + (round(far_y) - y) * along[1])
        h = abs((round(far_x) - x) * across[0] + (round(far_y) - y) * across[1])
    corners = [
        (x + u * along[0] + v * across[0], y + u * along[1] + v * across[1])
        for u, v in ((0, 0), (w, 0), (w, h), (0, h))
    ]
    if w < MIN_SIDE_PX or h < MIN_SIDE_PX or not _overlaps(corners, width, height):
        return None
    # Only the part of the region that can meet the image is cut: a region 60 times the
    # image once built a 6000x6000 crop of white from a 100x100 page (5 GB, 138 s).
    (u0, u1), (v0, v1) = (
        _on_image(x, y, along, w, width, height),
        _on_image(x, y, across, h, width, height),
    )
    if u1 - u0 < MIN_SIDE_PX or v1 - v0 < MIN_SIDE_PX:
        return None
    x, y = x + u0 * along[0] + v0 * across[0], y + u0 * along[1] + v0 * across[1]
    # Output pixel (u, v) samples the image at corner + u * along + v * across, both
    # taken at pixel centres (hence the halves); what lies outside the image is white.
    to_image = np.array(
        [
            [along[0], across[0], x + (along[0] + across[0] - 1) / 2],
            [along[1], across[1], y + (along[1] + across[1] - 1) / 2],
        ],
        dtype=np.float64,
    )
    size = (max(1, round(u1 - u0)), max(1, round(v1 - v0)))
    # Beyond the image's edge, its last pixels go on: no colour the photo does not have.
    return pad(_warp(image, to_image, size, cv2.INTER_LINEAR, cv2.BORDER_REPLICATE))


def crop_polygon(image: np.ndarray, points: Sequence[Sequence[float]]) -> Crop | None:
    height, width = image.shape[:2]
    corners = [(_percent(px) / 100 * width, _percent(py) / 100 * height) for px, py in points]
    if len(corners) < 3 or not _overlaps(corners, width, height):
        return None
    left = max(0, math.floor(min(cx for cx, _ in corners)))
    top = max(0, math.floor(min(cy for _, cy in corners)))
    right = min(width, math.ceil(max(cx for cx, _ in corners)))
    bottom = min(height, math.ceil(max(cy for _, cy in corners)))
    if right - left < MIN_SIDE_PX or bottom - top < MIN_SIDE_PX:
        return None
    box = image[top:bottom, left:right]
    inside = np.zeros(box.shape[:2], dtype=np.uint8)
    outline = np.array([[cx - left, cy - top] for cx, cy in corners], dtype=np.float64)
    cv2.fillPoly(inside, [np.round(outline).astype(np.int32)], 1)
    if not inside.any():
        return None
    # Its bounding box, as a user would save it; what lies outside the polygon is left
    # as it is: painting it over drew edges the photo does not have.
    return pad(box)


def pad(crop: np.ndarray) -> Crop:
    """The crop with a margin of its own border, replicated; `drawn` is the crop within.

    The margin lets detection find text that touches the region's edge. It
    is the crop's own outermost pixels, drawn outwards, never a colour of its
    own: a white or paper-coloured frame around white text on a blue sign was
    read as letters (`E...|`).
    """
    height, width = crop.shape[:2]
    margin = _margin(min(height, width))
    padded = cv2.copyMakeBorder(crop, margin, margin, margin, margin, cv2.BORDER_REPLICATE)
    padded = padded.reshape(height + 2 * margin, width + 2 * margin, *crop.shape[2:])
    return Crop(padded, Area(margin, margin + height, margin, margin + width))


def _margin(shorter_side: int) -> int:
    return min(32, max(8, round(shorter_side * 0.35)))


def _percent(value: Any) -> float:
    return min(FAR_PERCENT, max(-FAR_PERCENT, float(value)))


def _on_image(
    x: float, y: float, direction: tuple[float, float], length: float, width: int, height: int
) -> tuple[float, float]:
    """The span of [0, length] along `direction` from (x, y) that the image's extent can reach."""
    reach = [
        (px - x) * direction[0] + (py - y) * direction[1]
        for px, py in ((0, 0), (width, 0), (width, height), (0, height))
    ]
    return max(0.0, math.floor(min(reach))), min(length, math.ceil(max(reach)))


def _warp(
    image: np.ndarray, to_image: np.ndarray, size: tuple[int, int], flags: int, border: int
) -> np.ndarray:
    warped = cv2.warpAffine(
        image, to_image, size, flags=flags | cv2.WARP_INVERSE_MAP, borderMode=border, borderValue=0
    )
    # OpenCV drops a single trailing plane; keep the caller's shape.
    return warped.reshape(size[1], size[0], *image.shape[2:])


def _overlaps(corners: Sequence[tuple[float, float]], width: int, height: int) -> bool:
    """Whether the region's bounding box shares any area with the image."""
    xs = [cx for cx, _ in corners]
    ys = [cy for _, cy in corners]
    return min(xs) < width and max(xs) > 0 and min(ys) < height and max(ys) > 0


def region_bounds(
    value: Mapping[str, Any], width: int, height: int
) -> tuple[int, int, int, int] | None:
    """The box of the image (left, top, right, bottom) a region can take pixels from.

    Clipped to the image, with a pixel of margin for interpolation at its edges;
    None when the region misses the image. Cutting this box out first keeps a
    crop from copying the whole page.
    """
    if "points" in value:
        corners = [
            (_percent(px) / 100 * width, _percent(py) / 100 * height) for px, py in value["points"]
        ]
    else:
        x = _percent(value["x"]) / 100 * width
        y = _percent(value["y"]) / 100 * height
        w = _percent(value["width"]) / 100 * width
        h = _percent(value["height"]) / 100 * height
        angle = math.radians(_percent(value.get("rotation") or 0.0))
        cos, sin = math.cos(angle), math.sin(angle)
        corners = [
            (x + u * cos - v * sin, y + u * sin + v * cos)
            for u, v in ((0, 0), (w, 0), (w, h), (0, h))
        ]
    if not corners:
        return None
    left = max(0, math.floor(min(cx for cx, _ in corners)) - 1)
    top = max(0, math.floor(min(cy for _, cy in corners)) - 1)
    right = min(width, math.ceil(max(cx for cx, _ in corners)) + 1)
    bottom = min(height, math.ceil(max(cy for _, cy in corners)) + 1)
    if right <= left or bottom <= top:
        return None
    return left, top, right, bottom


def within(
    value: Mapping[str, Any], box: tuple[int, int, int, int], width: int, height: int
) -> dict[str, Any]:
    """The region's geometry in percent of `box` (cut from a width x height image)."""
    left, top, right, bottom = box
    box_width, box_height = right - left, bottom - top

    def along_x(percent: Any) -> float:
        return (_percent(percent) / 100 * width - left) / box_width * 100

    def along_y(percent: Any) -> float:
        return (_percent(percent) / 100 * height - top) / box_height * 100

    if "points" in value:
        return {**value, "points": [[along_x(px), along_y(py)] for px, py in value["points"]]}
    return {
        **value,
        "x": along_x(value["x"]),
        "y": along_y(value["y"]),
        "width": _percent(value["width"]) * width / box_width,
        "height": _percent(value["height"]) * height / box_height,
    }
