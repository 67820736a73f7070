"""PDF files written byte by byte: small, valid in form, and hostile in content.

A PDF is numbered objects and a cross-reference table of their byte offsets;
`raw_pdf` writes both, so each hostile file below is a few lines of objects.
Object 1 is always the catalog, object 2 the page tree.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image


def raw_pdf(objects: Sequence[bytes]) -> bytes:
    """A PDF of these objects (numbered from 1), with a correct xref table and trailer."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    return out.getvalue()


def stream(content: bytes, entries: bytes = b"") -> bytes:
    return b"<< %s /Length %d >>\nstream\n%s\nendstream" % (entries, len(content), content)


CATALOG = b"<< /Type /Catalog /Pages 2 0 R >>"


def self_drawing_form() -> bytes:
    """A page that draws a form XObject which draws itself twice: 2**depth drawings.

    PDFium follows the form into itself; memory grows without bound (18.7 GB
    in 60 s, measured before pdf-to-tasks rendered in a capped process).
    """
    form = stream(
        b"q 0.5 0 0 0.5 0 0 cm /X0 Do Q q 0.5 0 0 0.5 100 100 cm /X0 Do Q 0 0 m 200 200 l S",
        b"/Type /XObject /Subtype /Form /BBox [0 0 200 200] /Resources 5 0 R",
    )
    return raw_pdf([
        CATALOG,
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Resources 5 0 R /Contents 4 0 R >>",
        stream(b"/X0 Do"),
        b"<< /XObject << /X0 6 0 R >> >>",
        form,
    ])  # fmt: skip


def page_tree_listing_itself() -> bytes:
    """A page tree whose only kid is the tree itself."""
    return raw_pdf([
        CATALOG,
        b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>",
    ])  # fmt: skip


def many_pages(count: int, size: tuple[int, int] = (612, 792)) -> bytes:
    """`count` pages sharing one content stream of text: a few bytes each, a full page rendered."""
    width, height = size
    kids = b" ".join(b"%d 0 R" % (5 + n) for n in range(count))
    pages = [
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources 4 0 R /Contents 3 0 R >>"
        % (width, height)
        for _ in range(count)
    ]
    text = b"BT /F1 24 Tf 72 700 Td (A page of many) Tj ET"
    return raw_pdf([
        CATALOG,
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count),
        stream(text),
        b"<< /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >>",
        *pages,
    ])  # fmt: skip


def pdf_of_images(pages: Sequence[Image.Image], dpi: int = 100) -> bytes:
    """A PDF of the images (Pillow's writer), each page as large in points as the image at `dpi`."""
    first, *rest = [page.convert("RGB") for page in pages]
    out = io.BytesIO()
    first.save(out, format="PDF", save_all=True, append_images=rest, resolution=dpi)
    return out.getvalue()
