"""Draw test images with known words, so a test knows what EasyOCR should read and where."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


@cache
def font(size: int) -> ImageFont.FreeTypeFont:
    if DEJAVU.is_file():
        return ImageFont.truetype(str(DEJAVU), size)
    return ImageFont.load_default(size=size)  # Pillow's bundled scalable font


@dataclass(frozen=True)
class DrawnLine:
    text: str
    box: tuple[float, float, float, float]  # left, top, right, bottom in pixels

    @property
    def centre(self) -> tuple[float, float]:
        left, top, right, bottom = self.box
        return (left + right) / 2, (top + bottom) / 2


def draw_page(
    lines: list[str],
    *,
    size: tuple[int, int] | None = None,
    font_size: int = 40,
    margin: int = 30,
    gap: int = 40,
) -> tuple[Image.Image, list[DrawnLine]]:
    """Black lines of text on white, one under the other; returns the image and each line's box."""
    face = font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    boxes = [probe.textbbox((0, 0), line, font=face) for line in lines]
    width = size[0] if size else margin * 2 + max(b[2] for b in boxes)
    height = size[1] if size else margin * 2 + sum(b[3] for b in boxes) + gap * (len(lines) - 1)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    drawn, y = [], margin
    for line, box in zip(lines, boxes, strict=True):
        draw.text((margin, y), line, font=face, fill="black")
        left, top, right, bottom = draw.textbbox((margin, y), line, font=face)
        drawn.append(DrawnLine(line, (left, top, right, bottom)))
        y += box[3] + gap
    return image, drawn
