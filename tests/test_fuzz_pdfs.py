"""Fuzz pdf-to-tasks's rendering with PDFs whose structure is mutated.

Real PDFs made here (Pillow's writer with the real photos of tests/images,
pypdfium2's writer, and pages written byte by byte) have their structure
mutated: a reference pointed at another object (or at the object itself, or
at none), a number rewritten (sizes, counts, lengths, offsets), an object
emptied, two swapped, the cross-reference table broken, the file cut short.
Each mutant is converted beside a good neighbour, through the real rendering
process under a 1 GiB memory cap and a 5 s page cap, for a bounded time:
every PDF gets a task or its own error naming it, the neighbour always gets
its task, and nothing is written outside the pages folder of a PDF that
succeeded.
"""

from __future__ import annotations

import asyncio
import io
import random
import re
import time
from collections.abc import Callable
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image

from ocr_backend.documents.batch import ConvertOptions, convert_documents
from ocr_backend.documents.renderer import GiB, RenderLimits
from ocr_backend.documents.tasks import DOCUMENT_LABEL_CONFIG, PageUrls
from ocr_backend.label_studio.config import parse_label_config
from tests.support.fuzzing import FUZZ_SECONDS
from tests.support.pdfs import many_pages, pdf_of_images

pytestmark = pytest.mark.slow  # FUZZ_SECONDS of fuzzing, a process that renders

IMAGES = Path(__file__).parent / "images"
MUTANTS_PER_RUN = 40  # one run of the command: one rendering process, restarted as needed
MIN_CASES = 80
NUMBERS = [b"0", b"-1", b"1", b"3.5", b"99999", b"2147483648", b"1e308", b"-99999999"]


def seeds() -> list[bytes]:
    """Real PDFs of several writers: photos (Pillow), text and shapes (pypdfium2), raw pages."""
    photos = [Image.open(IMAGES / name).convert("RGB") for name in sorted(IMAGES.glob("*.*"))
              if name.suffix in {".png", ".jpeg"}]  # fmt: skip
    small = [photo.resize((photo.width // 4, photo.height // 4)) for photo in photos]
    return [pdf_of_images(small, dpi=72), many_pages(3, size=(200, 200)), pypdfium2_pdf()]


def pypdfium2_pdf() -> bytes:
    """Two pages written by PDFium itself: one with an image, one blank."""
    document = pdfium.PdfDocument.new()
    page = document.new_page(200, 100)
    image = pdfium.PdfImage.new(document)
    bitmap = pdfium.PdfBitmap.from_pil(Image.open(IMAGES / "diagram_white_on_colour.jpeg"))
    image.set_bitmap(bitmap)
    image.set_matrix(pdfium.PdfMatrix().scale(200, 60))
    page.insert_obj(image)
    page.gen_content()
    document.new_page(100, 100)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def retarget(data: bytes, rng: random.Random) -> bytes:
    """One reference `N 0 R` pointed elsewhere: another object, its own, none."""
    references = list(re.finditer(rb"\b(\d+) 0 R\b", data))
    if not references:
        return data
    found = rng.choice(references)
    objects = [int(n) for n in re.findall(rb"(\d+) 0 obj", data)] or [1]
    target = rng.choice([*objects, 0, 999999, int(found.group(1))])
    return data[: found.start()] + b"%d 0 R" % target + data[found.end() :]


def renumber(data: bytes, rng: random.Random) -> bytes:
    """One number of the structure (outside streams) rewritten."""
    structure = re.sub(rb"stream\r?\n.*?endstream", lambda m: b"\0" * len(m.group()), data,
                       flags=re.S)  # fmt: skip
    numbers = list(re.finditer(rb"(?<![\w.])-?\d+(\.\d+)?(?![\w.])", structure))
    if not numbers:
        return data
    found = rng.choice(numbers)
    return data[: found.start()] + rng.choice(NUMBERS) + data[found.end() :]


def empty_object(data: bytes, rng: random.Random) -> bytes:
    """One object's body replaced by `null`."""
    objects = list(re.finditer(rb"(\d+ 0 obj\s*)(.*?)(\s*endobj)", data, flags=re.S))
    if not objects:
        return data
    found = rng.choice(objects)
    return data[: found.start(2)] + b"null" + data[found.end(2) :]


def swap_objects(data: bytes, rng: random.Random) -> bytes:
    """Two objects' bodies exchanged (the xref offsets then point into the wrong bodies)."""
    objects = list(re.finditer(rb"(\d+ 0 obj\s*)(.*?)(\s*endobj)", data, flags=re.S))
    if len(objects) < 2:
        return data
    first, second = sorted(rng.sample(objects, 2), key=lambda m: m.start())
    return (
        data[: first.start(2)] + second.group(2) + data[first.end(2) : second.start(2)]
        + first.group(2) + data[second.end(2) :]
    )  # fmt: skip


def list_itself(data: bytes, rng: random.Random) -> bytes:
    """A /Kids or /Parent made to name the object it is in, or a page twice."""
    kids = list(re.finditer(rb"/Kids\s*\[([^\]]*)\]", data))
    if not kids:
        return data
    found = rng.choice(kids)
    items = found.group(1).split(b" R")
    first = items[0].strip() + b" R"
    doubled = b"/Kids [" + b" ".join([first] * rng.choice([2, 50])) + b"]"
    return data[: found.start()] + doubled + data[found.end() :]


def break_xref(data: bytes, rng: random.Random) -> bytes:
    """The cross-reference table's offsets shifted or its keyword broken: PDFium must rebuild."""
    at = data.rfind(b"xref")
    if at < 0:
        return data
    if rng.random() < 0.5:
        return data[:at] + b"xrfe" + data[at + 4 :]
    shifted = re.sub(rb"(\d{10}) 00000 n", lambda m: b"%010d 00000 n" % (int(m.group(1)) + 7),
                     data[at:])  # fmt: skip
    return data[:at] + shifted


def cut_short(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))]


def flip_bytes(data: bytes, rng: random.Random) -> bytes:
    mutable = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        mutable[rng.randrange(len(mutable))] = rng.randrange(256)
    return bytes(mutable)


MUTATIONS: list[Callable[[bytes, random.Random], bytes]] = [
    retarget, renumber, empty_object, swap_objects, list_itself, break_xref, cut_short, flip_bytes,
]  # fmt: skip


def mutant(seed: bytes, rng: random.Random) -> bytes:
    data = seed
    for _ in range(rng.choice([1, 1, 2, 3])):
        data = rng.choice(MUTATIONS)(data, rng)
    return data


def test_mutated_pdfs_fail_alone_and_write_only_their_own_pages(tmp_path):
    rng = random.Random(20261203)
    originals = seeds()
    good = tmp_path / "in" / "good.pdf"
    good.parent.mkdir()
    good.write_bytes(many_pages(1, size=(100, 100)))
    options = ConvertOptions(
        out=tmp_path / "out", dpi=20, max_pixels=2_000_000,
        targets=parse_label_config(DOCUMENT_LABEL_CONFIG),
        page_urls=PageUrls(tmp_path / "out", url_prefix="http://x"),
        limits=RenderLimits(max_pages=50, max_output=GiB, memory=GiB, page_timeout=5),
    )  # fmt: skip
    cases = failed = stopped = 0
    started = time.monotonic()
    while time.monotonic() - started < FUZZ_SECONDS or cases < MIN_CASES:
        run = tmp_path / f"run-{cases}"
        run.mkdir()
        pdfs = []
        for n in range(MUTANTS_PER_RUN):
            path = run / f"mutant-{n}.pdf"
            path.write_bytes(mutant(rng.choice(originals), rng))
            pdfs += [path, good]
        results = asyncio.run(convert_documents(pdfs, options))
        assert len(results) == len(pdfs)
        kept_folders = set()
        for result in results:
            if result.source == good:
                assert result.task is not None, result.error
            if result.task is None:
                failed += 1
                assert result.error and str(result.source) in result.error
                stopped += "rendering process died" in result.error or "took more" in result.error
            else:
                (folder,) = {url.rsplit("/", 2)[-2] for url in result.task["data"]["pages"]}
                kept_folders.add(folder)
        written = {p.name for p in (options.out / "pages").iterdir()}
        assert written == kept_folders, "a failed PDF's pages are removed, and only those"
        cases += MUTANTS_PER_RUN
        # The next run's folder names start afresh: clear this one's pages.
        for folder in (options.out / "pages").iterdir():
            for file in folder.iterdir():
                file.unlink()
            folder.rmdir()
    print(
        f"{cases} mutated PDFs in {time.monotonic() - started:.0f} s: {failed} refused, "
        f"{stopped} of them by the memory or time cap"
    )
    assert 0 < failed < cases, "the mutations break some PDFs and leave others readable"
