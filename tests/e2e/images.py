"""Test images with known words: big black text on white, drawn with Pillow."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
)
FONT_SIZE = 48
MARGIN = 40
LINE_GAP = 50


def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in FONT_CANDIDATES:
        if Path(path).exists():
            return ImageFont.truetype(path, FONT_SIZE)
    return ImageFont.load_default(size=FONT_SIZE)  # Pillow >= 10.1 ships a scalable default


@dataclass(frozen=True)
class TextImage:
    """A PNG and where each line of its text was drawn (pixel boxes)."""

    name: str
    lines: tuple[str, ...]
    png: bytes
    width: int
    height: int
    line_boxes: tuple[tuple[int, int, int, int], ...]  # (left, top, right, bottom)

    @property
    def words(self) -> set[str]:
        return {word.upper() for line in self.lines for word in line.split()}

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def around_line(self, index: int, pad_px: int = 12) -> tuple[int, int, int, int]:
        """A box a user draws around one line: `pad_px` of margin, within the image."""
        left, top, right, bottom = self.line_boxes[index]
        left, top = max(0, left - pad_px), max(0, top - pad_px)
        right, bottom = min(self.width, right + pad_px), min(self.height, bottom + pad_px)
        return left, top, right, bottom


def draw_text_image(name: str, *lines: str, width: int = 800) -> TextImage:
    font = _font()
    line_height = FONT_SIZE + LINE_GAP
    height = 2 * MARGIN + line_height * len(lines)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    boxes = []
    for i, line in enumerate(lines):
        origin = (MARGIN, MARGIN + i * line_height + LINE_GAP // 2)
        draw.text(origin, line, fill="black", font=font)
        boxes.append(tuple(int(v) for v in draw.textbbox(origin, line, font=font)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return TextImage(
        name=name,
        lines=tuple(lines),
        png=buffer.getvalue(),
        width=width,
        height=height,
        line_boxes=tuple(boxes),
    )
