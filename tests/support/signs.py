"""Photos of signs and panels made with Pillow and numpy, deterministically.

The kinds of picture where a box drawn around one line holds more than
the line: a white frame around light text on a dark sign, a pictogram (an
arrow, a walking figure) at one end, bullet icons before text, coloured
panels; and what a phone does to them: JPEG at low quality, blur, the
camera tilted (a perspective warp). The fonts are Debian's DejaVu
(fonts-dejavu-core, which scripts/install-test-tools.sh installs).

Each maker returns the picture as encoded bytes (PNG or JPEG), as a user
would upload it; every run makes the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONTS = Path("/usr/share/fonts/truetype/dejavu")
Colour = tuple[int, int, int]


@cache
def _font(size: int, bold: bool = True, condensed: bool = False) -> ImageFont.FreeTypeFont:
    name = "DejaVuSans" + ("Condensed" if condensed else "") + ("-Bold" if bold else "") + ".ttf"
    path = FONTS / name
    if path.is_file():
        return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)  # Pillow's bundled scalable font


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality, subsampling=2)
    return buffer.getvalue()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def _arrow(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], fill: Colour) -> None:
    """A right-pointing arrow filling `box`, as on a direction sign."""
    left, top, right, bottom = box
    middle, height = (top + bottom) / 2, bottom - top
    shaft = height * 0.18
    head = left + (right - left) * 0.55
    draw.polygon(
        [
            (left, middle - shaft),
            (head, middle - shaft),
            (head, top),
            (right, middle),
            (head, bottom),
            (head, middle + shaft),
            (left, middle + shaft),
        ],
        fill=fill,
    )


def _walker(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], fill: Colour) -> None:
    """A walking figure made of a head and thick strokes, as on a pedestrian sign."""
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    cx = left + w / 2
    r = h * 0.1
    draw.ellipse((cx - r, top, cx + r, top + 2 * r), fill=fill)
    thick = max(3, round(h * 0.09))
    hip = (cx - w * 0.05, top + h * 0.58)
    neck = (cx + w * 0.02, top + h * 0.25)
    draw.line([neck, hip], fill=fill, width=thick)
    draw.line([hip, (left + w * 0.2, bottom)], fill=fill, width=thick)
    draw.line(
        [hip, (cx + w * 0.1, top + h * 0.78), (right - w * 0.15, bottom)], fill=fill, width=thick
    )
    draw.line([(left + w * 0.15, top + h * 0.5), (cx - w * 0.08, top + h * 0.32), neck],
              fill=fill, width=thick)  # fmt: skip
    draw.line([neck, (right - w * 0.15, top + h * 0.45)], fill=fill, width=thick)


def _sign(
    size: tuple[int, int],
    panel: Colour,
    ink: Colour,
    text: str,
    *,
    pictogram: str | None = None,
    at: str = "left",
    frame: bool = True,
    font_size: int = 40,
) -> Image.Image:
    """A sign: a panel, an inset frame in the ink's colour, a pictogram at one end, one line."""
    width, height = size
    sign = Image.new("RGB", size, panel)
    draw = ImageDraw.Draw(sign)
    inset = max(4, height // 12)
    if frame:
        draw.rounded_rectangle(
            (inset, inset, width - inset, height - inset),
            radius=inset * 2,
            outline=ink,
            width=max(3, height // 22),
        )
    face = _font(font_size)
    text_box = draw.textbbox((0, 0), text, font=face)
    text_width, text_height = text_box[2] - text_box[0], text_box[3] - text_box[1]
    icon = round(height * 0.5) if pictogram else 0
    gap = round(height * 0.18) if pictogram else 0
    x = (width - text_width - icon - gap) // 2
    y = (height - text_height) // 2 - text_box[1]
    icon_top = (height - icon) // 2
    if pictogram and at == "left":
        drawer = _arrow if pictogram == "arrow" else _walker
        drawer(draw, (x, icon_top, x + icon, icon_top + icon), ink)
        x += icon + gap
    draw.text((x, y), text, font=face, fill=ink)
    if pictogram and at == "right":
        x += text_width + gap
        drawer = _arrow if pictogram == "arrow" else _walker
        drawer(draw, (x, icon_top, x + icon, icon_top + icon), ink)
    return sign


def _photo_noise(image: Image.Image, seed: int, sigma: float = 5.0) -> Image.Image:
    noise = np.random.default_rng(seed).normal(0, sigma, (image.height, image.width, 3))
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64) + noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def street_signs() -> bytes:
    """Three direction signs on a wall: white on dark blue, brown and green, framed,
    an arrow or a walking figure at one end; blurred and saved at JPEG quality 30."""
    wall = Image.new("RGB", (900, 560), (168, 160, 150))
    signs = [
        _sign((640, 110), (22, 40, 110), (245, 245, 245), "Palais du LOUVRE", pictogram="arrow"),
        _sign(
            (700, 110),
            (110, 62, 30),
            (250, 250, 250),
            "LES ARTS DECORATIFS",
            pictogram="walker",
            at="right",
            font_size=38,
        ),  # fmt: skip
        _sign((600, 110), (20, 100, 60), (250, 250, 250), "Musee du LOUVRE", pictogram="walker"),
    ]
    for sign, (x, y) in zip(signs, ((60, 40), (100, 210), (150, 380)), strict=True):
        wall.paste(sign, (x, y))
    soft = _photo_noise(wall.filter(ImageFilter.GaussianBlur(1.0)), seed=1)
    return _jpeg(soft, quality=30)


def road_signs() -> bytes:
    """Motorway signs: white text in a white frame on green, black on yellow, a frame
    close to the last letter; JPEG quality 35."""
    sky = Image.new("RGB", (820, 520), (120, 150, 190))
    green = Image.new("RGB", (560, 230), (0, 110, 70))
    draw = ImageDraw.Draw(green)
    draw.rectangle((8, 8, 551, 221), outline=(255, 255, 255), width=5)
    draw.text((40, 30), "HARUS", font=_font(54), fill=(255, 255, 255))
    draw.text((40, 120), "EXIT 24B", font=_font(54), fill=(255, 255, 255))
    _arrow(draw, (420, 120, 500, 180), (255, 255, 255))
    sky.paste(green, (40, 30))
    yellow = Image.new("RGB", (470, 140), (250, 200, 0))
    draw = ImageDraw.Draw(yellow)
    draw.rectangle((6, 6, 463, 133), outline=(20, 20, 20), width=6)
    draw.text((34, 36), "SPEEDI SLOW", font=_font(52), fill=(20, 20, 20))
    sky.paste(yellow, (300, 330))
    soft = _photo_noise(sky.filter(ImageFilter.GaussianBlur(0.8)), seed=2)
    return _jpeg(soft, quality=35)


def bulleted_notice() -> bytes:
    """A notice: a red title bar, then lines each after a bullet icon (a dot, a square,
    a tick, an arrow), on off-white paper; saved as PNG."""
    paper = Image.new("RGB", (860, 560), (246, 244, 238))
    draw = ImageDraw.Draw(paper)
    draw.rectangle((0, 0, 860, 90), fill=(190, 30, 40))
    draw.text((40, 18), "HEALTH NOTICE", font=_font(46), fill=(255, 255, 255))
    lines = ["Wash your hands often", "Keep two metres apart", "Wear a mask indoors",
             "Stay home if unwell"]  # fmt: skip
    face = _font(36, bold=False)
    for number, line in enumerate(lines):
        y = 130 + number * 100
        icon = (40, y + 8, 70, y + 38)
        kind = number % 4
        if kind == 0:
            draw.ellipse(icon, fill=(30, 30, 30))
        elif kind == 1:
            draw.rectangle(icon, fill=(190, 30, 40))
        elif kind == 2:
            draw.line([(40, y + 24), (52, y + 36), (72, y + 6)], fill=(20, 120, 40), width=7)
        else:
            _arrow(draw, icon, (30, 60, 160))
        draw.text((95, y), line, font=face, fill=(25, 25, 25))
    return _png(_photo_noise(paper, seed=3, sigma=2.0))


def coloured_panels() -> bytes:
    """A social-media graphic: dark text on orange and light blue panels, light text on
    purple, with round icons beside the words; JPEG quality 25."""
    canvas = Image.new("RGB", (900, 600), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    panels = [
        ((30, 30, 870, 170), (245, 140, 30), (30, 30, 30), "SUMMER SALE 50%"),
        ((30, 210, 870, 350), (120, 190, 230), (20, 40, 80), "Free delivery today"),
        ((30, 390, 870, 560), (90, 40, 130), (250, 240, 250), "Join us on Friday"),
    ]
    for number, (box, fill, ink, text) in enumerate(panels):
        draw.rounded_rectangle(box, radius=24, fill=fill)
        left, top, _, bottom = box
        middle = (top + bottom) // 2
        draw.ellipse((left + 30, middle - 28, left + 86, middle + 28), fill=ink)
        draw.text((left + 115, middle - 30), text, font=_font(50, condensed=number == 1), fill=ink)
    return _jpeg(_photo_noise(canvas, seed=4, sigma=3.0), quality=25)


def tilted_poster() -> bytes:
    """A poster photographed by a phone held askew: a perspective warp, blur and JPEG 30."""
    poster = Image.new("RGB", (800, 560), (250, 250, 245))
    draw = ImageDraw.Draw(poster)
    draw.rectangle((0, 0, 800, 110), fill=(20, 70, 140))
    draw.text((40, 25), "CITY LIBRARY", font=_font(56), fill=(255, 255, 255))
    for number, line in enumerate(["Opening hours 9 to 17", "Closed on Sundays",
                                   "Reading room level 2"]):  # fmt: skip
        draw.text((50, 160 + number * 110), line, font=_font(44, bold=False), fill=(30, 30, 30))
    pixels = np.asarray(poster)
    source = np.float32([[0, 0], [800, 0], [800, 560], [0, 560]])
    target = np.float32([[60, 40], [820, 90], [800, 640], [40, 600]])
    warp = cv2.getPerspectiveTransform(source, target)
    photo = cv2.warpPerspective(
        pixels, warp, (880, 690), borderMode=cv2.BORDER_CONSTANT, borderValue=(90, 80, 70)
    )
    soft = Image.fromarray(photo).filter(ImageFilter.GaussianBlur(1.2))
    return _jpeg(_photo_noise(soft, seed=5), quality=30)


MADE: dict[str, Callable[[], bytes]] = {
    "made_street_signs.jpeg": street_signs,
    "made_road_signs.jpeg": road_signs,
    "made_bulleted_notice.png": bulleted_notice,
    "made_coloured_panels.jpeg": coloured_panels,
    "made_tilted_poster.jpeg": tilted_poster,
}
