"""A region in Label Studio's percent geometry -> an upright crop of the image, in pixels.

Label Studio's rectangle is its top-left corner (x, y), its size, and a
rotation in degrees clockwise about that corner; x and width are percent of
the image width, y and height percent of its height. A rotated rectangle is
turned upright as it is cut out, so the text in it reads left to right. A
polygon is cut out by its bounding box.

What is not the region (outside a polygon, beyond the image's edge) and a
margin around it are painted the region's own paper colour, never white:
around white text on a blue sign a white frame is darker than nothing, it
is more ink than the letters, and the recogniser read it as `E...|`. Pure
functions over numpy arrays of any number of planes (RGB, or images/planes.py's
colour and grey), no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

MIN_SIDE_PX = 2.0  # a region thinner than this holds no text


def crop_region(image: np.ndarray, value: Mapping[str, Any]) -> np.ndarray | None:
    """The padded upright crop of a rectangle or polygon value; None when it holds no pixels."""
    if "points" in value:
        return crop_polygon(image, value["points"])
    return crop_rectangle(image, value)


def crop_rectangle(image: np.ndarray, value: Mapping[str, Any]) -> np.ndarray | None:
    height, width = image.shape[:2]
    x = float(value["x"]) / 100 * width
    y = float(value["y"]) / 100 * height
    w = float(value["width"]) / 100 * width
    h = float(value["height"]) / 100 * height
    angle = math.radians(float(value.get("rotation") or 0.0))
    along = (math.cos(angle), math.sin(angle))  # unit vector along the top edge
    across = (-math.sin(angle), math.cos(angle))  # unit vector down the left edge
    corners = [
        (x + u * along[0] + v * across[0], y + u * along[1] + v * across[1])
        for u, v in ((0, 0), (w, 0), (w, h), (0, h))
    ]
    if w < MIN_SIDE_PX or h < MIN_SIDE_PX or not _overlaps(corners, width, height):
        return None
    # Output pixel (u, v) samples the image at corner + u * along + v * across, both
    # taken at pixel centres (hence the halves); what lies outside the image is white.
    to_image = np.array(
        [
            [along[0], across[0], x + (along[0] + across[0] - 1) / 2],
            [along[1], across[1], y + (along[1] + across[1] - 1) / 2],
        ],
        dtype=np.float64,
    )
    size = (max(1, round(w)), max(1, round(h)))
    # Replicating the edge keeps the pixels along it from blending with a colour not there.
    upright = _warp(image, to_image, size, cv2.INTER_LINEAR, cv2.BORDER_REPLICATE)
    # Which output pixels sample the image; the rest lie beyond its edge.
    ones = np.ones(image.shape[:2], np.uint8)
    inside = _warp(ones, to_image, size, cv2.INTER_NEAREST, cv2.BORDER_CONSTANT)
    return pad(upright, inside.astype(bool))


def crop_polygon(image: np.ndarray, points: Sequence[Sequence[float]]) -> np.ndarray | None:
    height, width = image.shape[:2]
    corners = [(float(px) / 100 * width, float(py) / 100 * height) for px, py in points]
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
    return pad(box, inside.astype(bool))


def pad(crop: np.ndarray, inside: np.ndarray | None = None) -> np.ndarray:
    """The crop with a margin, and what is not `inside` the region, in its paper colour.

    The margin lets text touching the region's edge still be found and read
    whole. The paper colour is the region's median colour, plane by plane:
    the background a loosely drawn box holds more of than anything else.
    """
    if inside is None:
        inside = np.ones(crop.shape[:2], dtype=bool)
    region = crop[inside] if inside.any() else crop.reshape(-1, *crop.shape[2:])
    # A sample of 100k pixels tells the paper as well as all of a large region does.
    paper = np.median(region[:: max(1, len(region) // 100_000)], axis=0).astype(crop.dtype)
    painted = crop.copy()
    painted[~inside] = paper
    margin = min(32, max(8, round(min(crop.shape[:2]) * 0.35)))
    planes = 1 if crop.ndim == 2 else crop.shape[2]
    return cv2.copyMakeBorder(
        painted,
        margin,
        margin,
        margin,
        margin,
        cv2.BORDER_CONSTANT,
        value=[float(v) for v in np.broadcast_to(paper, (planes,))],
    )


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
