"""A folder of PDFs -> page images on disk and one Label Studio task per PDF, read or not.

Pages are rendered one PDF at a time in the rendering process
(documents/renderer.py: memory, time, page and disk caps), written as PNG
files, while the engine's threads read the pages already written, a bounded
number ahead. Each page is read from the PNG file written, decoded as the
service decodes a fetched image (images/decode.py), so the predictions are
those a backend connected later would give for the same file. A PDF that
fails is left out, with its reason, and only the page files written for it
in this run are removed; the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..convert import page_prediction
from ..engine import Engine
from ..errors import DocumentError, ImageDecodeError
from ..images.decode import decode_page
from ..label_studio.config import OcrTargets
from ..ocr.lines import TextLine
from .pdf import check_file
from .render import PARTIAL_SUFFIX
from .renderer import RenderedPage, Renderer, RenderLimits
from .tasks import PageUrls, document_task

FOLDER_NAME_BYTES = 200  # a file system allows 255 a name; room for `-2`, `-3`...


@dataclass(frozen=True)
class ConvertOptions:
    out: Path  # page images go to out/pages/<pdf name>/
    dpi: float
    max_pixels: int
    targets: OcrTargets  # the data key, and the tags a prediction fills
    page_urls: PageUrls
    score_threshold: float = 0.0
    model_version: str | None = None  # set when reading (engine given)
    limits: RenderLimits = RenderLimits()


@dataclass
class DocumentResult:
    source: Path
    pages: int = 0
    task: dict[str, Any] | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)  # worth saying, not failures
    written: int = 0  # bytes of page images kept


async def convert_documents(
    pdfs: Sequence[Path],
    options: ConvertOptions,
    engine: Engine | None = None,
    on_page: Callable[[], None] = lambda: None,
    on_count: Callable[[int], None] = lambda count: None,
) -> list[DocumentResult]:
    """One result per PDF, in order.

    `on_count` is told each PDF's page count as it is opened, `on_page` each
    page as it is done. No PDF is held open between the two: a run of
    thousands of PDFs needs a few file descriptors, not one each.
    """
    results: list[DocumentResult] = []
    folders: set[str] = set()
    spent = 0  # bytes of page images kept so far
    async with Renderer(options.limits) as renderer:
        for path in pdfs:
            folder = options.out / "pages" / _unique(folder_name(path.stem), folders)
            result = await _convert_one(
                path, folder, options, engine, renderer,
                budget=options.limits.max_output - spent, on_page=on_page, on_count=on_count,
            )  # fmt: skip
            spent += result.written
            results.append(result)
    return results


async def _convert_one(
    path: Path,
    folder: Path,
    options: ConvertOptions,
    engine: Engine | None,
    renderer: Renderer,
    *,
    budget: int,
    on_page: Callable[[], None],
    on_count: Callable[[int], None],
) -> DocumentResult:
    result = DocumentResult(path)
    try:
        await asyncio.to_thread(check_file, path)  # cheap refusals, before the process
    except DocumentError as exc:
        result.error = str(exc)
        return result
    created = await asyncio.to_thread(_make_folder, folder)
    pages: list[RenderedPage] = []
    read: list[asyncio.Task[tuple[list[TextLine], int, int]]] = []
    # Decoded pages waiting for the engine: enough to keep its threads busy, no more.
    ahead = asyncio.Semaphore(engine.threads + 1 if engine else 1)

    async def read_page(file: Path) -> tuple[list[TextLine], int, int]:
        assert engine is not None
        try:
            data = await asyncio.to_thread(file.read_bytes)
            planes = await asyncio.to_thread(decode_page, data, max_pixels=options.max_pixels)
            lines = await engine.read(planes)
        finally:
            ahead.release()
        on_page()
        return lines, planes.shape[1], planes.shape[0]

    def counted(count: int) -> None:
        result.pages = count
        on_count(count)

    try:
        rendered = renderer.pages(
            path, folder, dpi=options.dpi, max_pixels=options.max_pixels, budget=budget,
            on_count=counted,
        )  # fmt: skip
        async with contextlib.aclosing(rendered):
            async for page in rendered:
                pages.append(page)
                if engine is None:
                    on_page()
                    continue
                await ahead.acquire()
                read.append(asyncio.ensure_future(read_page(page.file)))
        texts = await asyncio.gather(*read)
    except (DocumentError, ImageDecodeError, OSError) as exc:
        for job in read:
            job.cancel()
        await asyncio.gather(*read, return_exceptions=True)
        await asyncio.to_thread(_remove_pages, folder, [page.file for page in pages], created)
        result.error = str(exc) if isinstance(exc, DocumentError) else f"{path}: {exc}"
        return result

    result.written = sum(page.size for page in pages)
    urls = [options.page_urls.url(page.file) for page in pages]
    prediction = None
    if engine is not None:
        prediction = _prediction(texts, options)
        result.notes.extend(
            f"page {number}: no text found (blank, or text too faint at {options.dpi:g} DPI?)"
            for number, (lines, _, _) in enumerate(texts, start=1)
            if not lines
        )
    result.task = document_task(
        urls, data_key=options.targets.image_key, source=path.name, prediction=prediction
    )
    return result


def folder_name(stem: str) -> str:
    """A PDF's name as the name of its pages folder: one plain folder name, never `..`.

    A stem of dots (`...pdf` has the stem `..`) would name the output folder
    itself, or its parent, which a failed PDF's clean-up would then remove.
    Leading dots are dropped (no hidden folders), separators and control
    characters become `_`, and a name left empty is `document`.
    """
    name = "".join("_" if char in "/\\" or ord(char) < 32 else char for char in stem)
    name = name.lstrip(". ").rstrip()
    name = name.encode()[:FOLDER_NAME_BYTES].decode(errors="ignore")
    return name or "document"


def _make_folder(folder: Path) -> bool:
    """Make the folder; whether it was made now (an earlier run's is never removed)."""
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        return False
    return True


def _remove_pages(folder: Path, files: list[Path], created: bool) -> None:
    """Remove what this run wrote for a failed PDF: its pages, a page half written, the folder.

    Only those: the folder may hold an earlier run's pages of a PDF of the
    same name, which Label Studio may be showing.
    """
    for file in files:
        file.unlink(missing_ok=True)
    for partial in folder.glob("*" + PARTIAL_SUFFIX):
        partial.unlink(missing_ok=True)
    if created:
        with contextlib.suppress(OSError):  # not empty: something else was put there
            folder.rmdir()


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
