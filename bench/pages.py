"""Realistic test pages for the benchmarks: a photo-sized document and smaller scans."""

from __future__ import annotations

import random

from PIL import Image, ImageDraw

from tests.support.drawing import font

WORDS = (
    "invoice order shipping address total amount customer street number date payment "
    "delivery account reference quantity price tax net gross item description Berlin "
    "Ulaanbaatar London 2024 2025 17.50 EUR USD page contact phone email"
).split()


def document(width: int = 1080, height: int = 1349, lines: int = 25, seed: int = 0) -> Image.Image:
    """A page of `lines` lines of words, like a phone photo of a letter (1080x1349)."""
    rng = random.Random(seed)
    image = Image.new("RGB", (width, height), (250, 250, 245))
    draw = ImageDraw.Draw(image)
    step = (height - 80) // lines
    for row in range(lines):
        size = rng.choice((22, 26, 30, 36))
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 7)))
        draw.text(
            (40 + rng.randint(0, 60), 40 + row * step), text, font=font(size), fill=(20, 20, 20)
        )
    return image


def pages() -> list[tuple[str, Image.Image]]:
    return [
        ("photo-1080x1349", document()),
        ("photo-1080x1349-b", document(seed=1)),
        ("receipt-600x900", document(600, 900, lines=18, seed=2)),
        ("label-800x300", document(800, 300, lines=4, seed=3)),
    ]
