"""PDF pages -> RGB images, with pypdfium2 (PDFium, the PDF engine of Chromium).

Knows nothing of OCR or Label Studio. PDFium is not thread-safe: one
`PdfFile` is used from one thread at a time (the command gives it one thread).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pypdfium2 as pdfium
from PIL import Image

from ..errors import EmptyDocument, NotAPdf, PageFailed

POINTS_PER_INCH = 72  # PDF page sizes are in points
PDF_MAGIC = b"%PDF-"


class PdfFile:
    """One opened PDF: its page count, and each page rendered at a DPI."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            head = path.read_bytes()[:1024]
        except OSError as exc:
            raise NotAPdf(f"{path}: cannot be read ({exc.strerror or exc})") from None
        if PDF_MAGIC not in head:
            start = f"it starts with {head[:16]!r}" if head else "it is empty"
            raise NotAPdf(
                f"{path} is not a PDF ({start}, not %PDF-): give PDF files, or convert "
                "this one to PDF first"
            )
        try:
            self.document = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError as exc:
            # PDFium reports a PDF with no page tree as a load failure.
            raise NotAPdf(
                f"{path} looks like a PDF but PDFium cannot open it ({exc}): it is damaged, "
                "has no pages, or is encrypted; repair or decrypt it (e.g. `qpdf --decrypt`)"
            ) from None
        if len(self.document) == 0:
            self.close()
            raise EmptyDocument(f"{path} has no pages: there is nothing to label")

    def __len__(self) -> int:
        return len(self.document)

    def __enter__(self) -> PdfFile:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def pixel_size(self, index: int, dpi: float) -> tuple[int, int]:
        """The size in pixels page `index` (from 0) renders to at `dpi`."""
        page = self.document[index]
        try:
            width, height = page.get_size()
        finally:
            page.close()
        scale = dpi / POINTS_PER_INCH
        return round(width * scale), round(height * scale)

    def render(self, index: int, dpi: float, *, max_pixels: int) -> Image.Image:
        """Page `index` (from 0) as an RGB image, white behind transparent parts.

        Raises PageFailed, naming the page from 1, when it would be larger than
        `max_pixels` or PDFium cannot draw it.
        """
        number = index + 1
        width, height = self.pixel_size(index, dpi)
        if width < 1 or height < 1:
            raise PageFailed(
                f"{self.path} page {number} is empty ({width}x{height} pixels at {dpi:g} DPI): "
                "its page box has no area; fix or remove that page",
                page=number,
            )
        if width * height > max_pixels:
            raise PageFailed(
                f"{self.path} page {number} would be {width}x{height} pixels at {dpi:g} DPI, "
                f"more than MAX_IMAGE_PIXELS={max_pixels}: lower --dpi or raise MAX_IMAGE_PIXELS",
                page=number,
            )
        page = self.document[index]
        try:
            bitmap = page.render(scale=dpi / POINTS_PER_INCH, may_draw_forms=True)
            return bitmap.to_pil().convert("RGB")
        except pdfium.PdfiumError as exc:
            raise PageFailed(
                f"{self.path} page {number} cannot be rendered by PDFium ({exc})", page=number
            ) from None
        finally:
            page.close()

    def pages(self, dpi: float, *, max_pixels: int) -> Iterator[Image.Image]:
        for index in range(len(self)):
            yield self.render(index, dpi, max_pixels=max_pixels)

    def close(self) -> None:
        self.document.close()
