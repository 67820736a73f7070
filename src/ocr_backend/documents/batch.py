"""A folder of PDFs -> page images on disk and one Label Studio task per PDF, read or not.

Pages are rendered one at a time in one thread (PDFium is not thread-safe)
while the engine's threads read the pages already rendered, a bounded number
ahead. A PDF that fails is left out, with its reason; the others go on.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..convert import page_prediction
from ..engine import Engine
from ..errors import DocumentError
from ..label_studio.config import OcrTargets
from ..ocr.lines import TextLine
from .pdf import PdfFile
from .tasks import PageUrls, document_task

PAGE_FORMAT = "page-{number:04d}.png"


@dataclass(frozen=True)
class ConvertOptions:
    out: Path  # page images go to out/pages/<pdf name>/
    dpi: float
    max_pixels: int
    targets: OcrTargets  # the data key, and the tags a prediction fills
    page_urls: PageUrls
    score_threshold: float = 0.0
    model_version: str | None = None  # set when reading (engine given)


@dataclass
class DocumentResult:
    source: Path
    pages: int = 0
    task: dict[str, Any] | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)  # worth saying, not failures


def open_pdfs(paths: Sequence[Path]) -> list[tuple[Path, PdfFile | DocumentError]]:
    """Each path opened as a PDF, or the reason it cannot be."""
    opened: list[tuple[Path, PdfFile | DocumentError]] = []
    for path in paths:
        try:
            opened.append((path, PdfFile(path)))
        except DocumentError as exc:
            opened.append((path, exc))
    return opened


async def convert_documents(
    pdfs: Sequence[tuple[Path, PdfFile | DocumentError]],
    options: ConvertOptions,
    engine: Engine | None = None,
    on_page: Callable[[], None] = lambda: None,
) -> list[DocumentResult]:
    """One result per PDF, in order; `on_page` is called as each page is done."""
    results = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pdfium") as pdfium_thread:
        folders: set[str] = set()
        for path, pdf in pdfs:
            if isinstance(pdf, DocumentError):
                results.append(DocumentResult(path, error=str(pdf)))
                continue
            folder = options.out / "pages" / _unique(path.stem, folders)
            with pdf:
                results.append(
                    await _convert_one(path, pdf, folder, options, engine, on_page, pdfium_thread)
                )
    return results


async def _convert_one(
    path: Path,
    pdf: PdfFile,
    folder: Path,
    options: ConvertOptions,
    engine: Engine | None,
    on_page: Callable[[], None],
    pdfium_thread: ThreadPoolExecutor,
) -> DocumentResult:
    loop = asyncio.get_running_loop()
    result = DocumentResult(path, pages=len(pdf))
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    files = [folder / PAGE_FORMAT.format(number=i + 1) for i in range(len(pdf))]
    read: list[asyncio.Task[tuple[list[TextLine], int, int]]] = []
    # Rendered pages waiting for the engine: enough to keep its threads busy, no more.
    ahead = asyncio.Semaphore(engine.threads + 1 if engine else 1)

    async def read_page(image: Image.Image) -> tuple[list[TextLine], int, int]:
        assert engine is not None
        try:
            lines = await engine.read(np.asarray(image))
        finally:
            ahead.release()
        on_page()
        return lines, image.width, image.height

    try:
        for index, file in enumerate(files):
            await ahead.acquire()
            try:
                render = partial(pdf.render, index, options.dpi, max_pixels=options.max_pixels)
                image = await loop.run_in_executor(pdfium_thread, render)
                await asyncio.to_thread(image.save, file)
            except BaseException:
                ahead.release()
                raise
            if engine is None:
                ahead.release()
                on_page()
            else:
                read.append(asyncio.ensure_future(read_page(image)))
        pages = await asyncio.gather(*read)
    except DocumentError as exc:
        for job in read:
            job.cancel()
        shutil.rmtree(folder, ignore_errors=True)
        result.error = str(exc)
        return result

    urls = [options.page_urls.url(file) for file in files]
    prediction = None
    if engine is not None:
        prediction = _prediction(pages, options)
        result.notes.extend(
            f"page {number}: no text found (blank, or text too faint at {options.dpi:g} DPI?)"
            for number, (lines, _, _) in enumerate(pages, start=1)
            if not lines
        )
    result.task = document_task(
        urls, data_key=options.targets.image_key, source=path.name, prediction=prediction
    )
    return result


def _prediction(
    pages: Sequence[tuple[list[TextLine], int, int]], options: ConvertOptions
) -> dict[str, Any]:
    """The document's prediction, as /predict would answer it for the same pages."""
    assert options.model_version is not None  # set whenever an engine reads
    prediction = page_prediction(
        pages,
        options.targets,
        score_threshold=options.score_threshold,
        model_version=options.model_version,
    )
    return {
        "model_version": prediction.model_version,
        "score": prediction.score,
        "result": prediction.result,
    }


def _unique(name: str, taken: set[str]) -> str:
    """`name`, or `name-2`, `name-3`...: two PDFs of the same name keep their own pages."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    taken.add(candidate)
    return candidate
