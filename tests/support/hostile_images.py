"""Image files built to hurt a decoder, shared by the in-process and process tests."""

from __future__ import annotations

import io
import struct

from PIL import Image


def ico_with_a_large_png(side: int = 6000) -> bytes:
    """An ICO whose one entry is a PNG of side x side pixels: tiny on disk, huge decoded."""
    buffer = io.BytesIO()
    Image.new("L", (side, side), 255).save(buffer, "PNG", optimize=True)
    png = buffer.getvalue()
    header = struct.pack("<HHH", 0, 1, 1)
    entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 6 + 16)
    return header + entry + png
