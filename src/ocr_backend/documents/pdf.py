"""PDF pages -> RGB images, with pypdfium2 (PDFium, the PDF engine of Chromium).

Knows nothing of OCR or Label Studio. PDFium is not thread-safe, and a
hostile PDF can make it take memory without bound: `PdfFile` is used only
in the rendering process (documents/render.py), one PDF at a time, under
that process's memory cap. `check_file` is cheap and safe anywhere.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pypdfium2 as pdfium
from PIL import Image

from ..errors import EmptyDocument, NotAPdf, PageFailed

POINTS_PER_INCH = 72  # PDF page sizes are in points
PDF_MAGIC = b"%PDF-"
HEADER_BYTES = 1024  # where a PDF's header may lie (PDF 2.0, 7.5.2: readers look this far)

# What a file that is not a regular file is, in the refusal's words.
_FILE_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a folder",
}


def check_file(path: Path) -> None:
    """Raises NotAPdf unless `path` is a regular file with a PDF header in its first 1 KB.

    Reads those bytes only (reading the file whole cost 1.4 GB for a 1.5 GB
    non-PDF), and refuses before reading anything that is not a regular file:
    opening a FIFO for reading waits for a writer for ever. The file is opened
    without blocking and checked on the open descriptor, so that it cannot be
    swapped for a FIFO between the check and the read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket, or a FIFO opened for writing: not a file
            raise NotAPdf(f"{path} is not a regular file (a socket): give PDF files") from None
        raise NotAPdf(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        kind = stat.S_IFMT(os.fstat(fd).st_mode)
        if kind != stat.S_IFREG:
            what = _FILE_KINDS.get(kind, "not a file")
            raise NotAPdf(f"{path} is not a regular file ({what}): give PDF files")
        head = os.read(fd, HEADER_BYTES)
    except OSError as exc:
        raise NotAPdf(f"{path}: cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if PDF_MAGIC not in head:
        start = f"it starts with {head[:16]!r}" if head else "it is empty"
        raise NotAPdf(
            f"{path} is not a PDF ({start}, not %PDF-): give PDF files, or convert "
            "this one to PDF first"
        )


class PdfFile:
    """One opened PDF: its page count, and each page rendered at a DPI."""

    def __init__(self, path: Path) -> None:
        self.path = path
        check_file(path)
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
        page = self._page(index)
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
        page = self._page(index)
        try:
            bitmap = page.render(scale=dpi / POINTS_PER_INCH, may_draw_forms=True)
            return bitmap.to_pil().convert("RGB")
        except pdfium.PdfiumError as exc:
            raise PageFailed(
                f"{self.path} page {number} cannot be rendered by PDFium ({exc})", page=number
            ) from None
        finally:
            page.close()

    def _page(self, index: int) -> pdfium.PdfPage:
        try:
            return self.document[index]
        except pdfium.PdfiumError as exc:
            # e.g. a page tree that lists itself: PDFium counts a page it cannot load.
            raise PageFailed(
                f"{self.path} page {index + 1} cannot be loaded by PDFium ({exc}): the PDF is "
                "damaged (its page tree?); repair it, e.g. `qpdf in.pdf out.pdf`",
                page=index + 1,
            ) from None

    def pages(self, dpi: float, *, max_pixels: int) -> Iterator[Image.Image]:
        for index in range(len(self)):
            yield self.render(index, dpi, max_pixels=max_pixels)

    def close(self) -> None:
        self.document.close()
