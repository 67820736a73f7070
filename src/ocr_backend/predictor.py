"""Tasks + context -> one prediction per task, in task order.

`Predictor.predict` is the one entry point: it decides between reading the
whole page and reading only the regions a user just drew (interactive
pre-annotation). Images are fetched and decoded concurrently while the
engine reads the ones already in hand; a bounded number of images is held at
once, across all requests, so neither a request of 100 tasks nor 100
requests of one task decode 100 images into memory together.

A multi-page task (`<Image valueList="$pages">`) is read page by page through
the same bound: each page is one image, and each region names its page with
`item_index`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from .convert import lines_to_regions
from .engine import OcrEngine
from .errors import TaskError
from .images.cache import ImageCache
from .images.crop import crop_region
from .images.decode import PDF_ADVICE, decode_image
from .images.fetch import describe, names_a_pdf
from .label_studio.config import OcrTargets
from .label_studio.regions import DrawnRegion, drawn_regions, reading_order, region_items
from .label_studio.schemas import Prediction, Task
from .label_studio.storage import LabelStudio, LabelStudioImageFetcher
from .metrics import IMAGES_FAILED, IMAGES_FETCHED
from .ocr.lines import TextLine, mean_score
from .settings import Settings

log = logging.getLogger(__name__)


def model_version(settings: Settings) -> str:
    """Changes whenever a setting that changes the output changes, so Label Studio asks again."""
    import easyocr

    output_settings = {
        "languages": list(settings.lang_list),
        "score_threshold": settings.score_threshold,
        "height_ths": settings.height_ths,
        "label_mappings": settings.label_mappings,
    }
    digest = hashlib.sha256(json.dumps(output_settings, sort_keys=True).encode()).hexdigest()
    return f"easyocr-{easyocr.__version__}-{'+'.join(settings.lang_list)}-{digest[:8]}"


@dataclass(frozen=True)
class PredictContext:
    """What one /predict brings beside its tasks.

    `label_studio`: where the project's images live and with which token
    (None: only the settings name Label Studio). `interactive`: Label
    Studio's `params.context`, holding what the user just drew, if anything.
    `request_id`: for the log lines about this request's tasks.
    """

    label_studio: LabelStudio | None = None
    interactive: dict[str, Any] | None = None
    request_id: str = "-"


class Predictor:
    def __init__(
        self, engine: OcrEngine, fetcher: LabelStudioImageFetcher, settings: Settings
    ) -> None:
        self.engine = engine
        self.fetcher = fetcher
        self.settings = settings
        self.model_version = model_version(settings)
        # The engine's threads plus a couple of images decoded ahead of them, shared by
        # all requests: the memory held stays bounded however many requests wait.
        self.images_in_hand = engine.threads + 2
        self.slots = asyncio.Semaphore(self.images_in_hand)
        self.image_cache = ImageCache(settings.image_cache_bytes)

    async def predict(
        self, tasks: Sequence[Task], targets: OcrTargets, context: PredictContext | None = None
    ) -> list[Prediction]:
        """One prediction per task, in order: the whole page, or only the regions drawn."""
        context = context or PredictContext()
        drawn = drawn_regions(context.interactive)
        if drawn is not None:  # interactive: read only what the user just drew
            return [await self._read_drawn(task, targets, drawn, context) for task in tasks]
        read = self._read_pages if targets.multi_page else self._read_page
        return list(await asyncio.gather(*(read(task, targets, context) for task in tasks)))

    async def _read_page(
        self, task: Task, targets: OcrTargets, context: PredictContext
    ) -> Prediction:
        try:
            async with self.slots:
                image = await self._load_image(task, targets, context)
                lines = await self.engine.read(np.asarray(image))
        except TaskError as exc:
            return self._failed(task, exc, context)
        kept = self._confident(lines)
        return Prediction(
            result=lines_to_regions(kept, targets, image.width, image.height),
            score=mean_score(kept),
            model_version=self.model_version,
        )

    async def _read_drawn(
        self,
        task: Task,
        targets: OcrTargets,
        regions: Sequence[DrawnRegion],
        context: PredictContext,
    ) -> Prediction:
        try:
            if targets.multi_page:
                crops = await self._crops_on_pages(task, targets, regions, context)
            else:
                image = await self._load_image(task, targets, context)
                # Copying a large page out of Pillow takes a while: not on the event loop.
                crops = await asyncio.to_thread(
                    _crops, image, [region.geometry for region in regions]
                )
        except TaskError as exc:
            return self._failed(task, exc, context)
        read = await asyncio.gather(
            *(self.engine.read_region(crop) if crop is not None else _nothing() for crop in crops)
        )
        result: list[dict[str, Any]] = []
        kept_lines: list[TextLine] = []
        for region, lines in zip(regions, read, strict=True):
            kept = self._confident(lines)
            kept_lines.extend(kept)
            result.extend(region_items(region, targets, reading_order(kept)))
        return Prediction(
            result=result, score=mean_score(kept_lines), model_version=self.model_version
        )

    # -- multi-page tasks: <Image valueList="$pages"> -------------------------------------

    async def _read_pages(
        self, task: Task, targets: OcrTargets, context: PredictContext
    ) -> Prediction:
        """Every page of a multi-page task, fetched concurrently, each read in its own slot.

        The first page that fails fails the task, with its page number in the
        reason; the pages still waiting are not read.
        """
        try:
            refs = page_refs(task, targets)
            reads = [
                asyncio.ensure_future(self._read_one_page(task, ref, index, len(refs), context))
                for index, ref in enumerate(refs)
            ]
            try:
                pages = await asyncio.gather(*reads)
            finally:
                for read in reads:
                    read.cancel()
        except TaskError as exc:
            return self._failed(task, exc, context)
        result: list[dict[str, Any]] = []
        kept_lines: list[TextLine] = []
        for index, (lines, width, height) in enumerate(pages):
            kept = self._confident(lines)
            kept_lines.extend(kept)
            result.extend(lines_to_regions(kept, targets, width, height, item_index=index))
        return Prediction(
            result=result, score=mean_score(kept_lines), model_version=self.model_version
        )

    async def _read_one_page(
        self, task: Task, ref: Any, index: int, pages: int, context: PredictContext
    ) -> tuple[list[TextLine], int, int]:
        """One page's lines and size; a TaskError names the page."""
        try:
            async with self.slots:
                image = await self._load_ref(ref, task, context)
                return await self.engine.read(np.asarray(image)), image.width, image.height
        except TaskError as exc:
            raise page_error(exc, index, pages) from None

    async def _crops_on_pages(
        self,
        task: Task,
        targets: OcrTargets,
        regions: Sequence[DrawnRegion],
        context: PredictContext,
    ) -> list[np.ndarray | None]:
        """Each drawn region cut from the page it was drawn on (its item_index), only that one."""
        refs = page_refs(task, targets)
        crops: list[np.ndarray | None] = [None] * len(regions)
        for index in sorted({region.item_index or 0 for region in regions}):
            if index >= len(refs):
                raise TaskError(
                    f"task {task.id}: a region was drawn on page {index + 1} (item_index "
                    f"{index}), but the task has {len(refs)} page(s)",
                    reason="page",
                )
            try:
                image = await self._load_ref(refs[index], task, context)
            except TaskError as exc:
                raise page_error(exc, index, len(refs)) from None
            on_page = [i for i, region in enumerate(regions) if (region.item_index or 0) == index]
            cut = await asyncio.to_thread(_crops, image, [regions[i].geometry for i in on_page])
            for i, crop in zip(on_page, cut, strict=True):
                crops[i] = crop
        return crops

    def _confident(self, lines: Sequence[TextLine]) -> list[TextLine]:
        """The lines read at SCORE_THRESHOLD or above."""
        return [line for line in lines if line.score >= self.settings.score_threshold]

    def _failed(self, task: Task, exc: TaskError, context: PredictContext) -> Prediction:
        """The prediction of a task whose image could not be had: empty, with the reason."""
        IMAGES_FAILED.labels(exc.reason).inc()
        log.warning("request %s: task %s: %s", context.request_id, task.id, exc)
        return Prediction(result=[], score=0.0, model_version=self.model_version, error=str(exc))

    async def _load_image(
        self, task: Task, targets: OcrTargets, context: PredictContext
    ) -> Image.Image:
        """The task's decoded image, from the cache or fetched. Raises TaskError."""
        ref = task.data.get(targets.image_key)
        if ref is None:
            keys = ", ".join(sorted(task.data)) or "none"
            raise TaskError(
                f'task {task.id} has no "{targets.image_key}" in its data (it has: {keys}); '
                f"the label config's Image tag reads ${targets.image_key}",
                reason="no_image_key",
            )
        if isinstance(ref, list):
            raise TaskError(
                f'task {task.id}: its "{targets.image_key}" is a list of {len(ref)} images; for '
                'documents of several pages use <Image valueList="$'
                f'{targets.image_key}"> in the label config',
                reason="list_for_one_image",
            )
        return await self._load_ref(ref, task, context)

    async def _load_ref(self, ref: Any, task: Task, context: PredictContext) -> Image.Image:
        """One decoded image, from the cache or fetched. Raises TaskError."""
        image = await self.image_cache.get(
            self.fetcher.cache_key(ref, context.label_studio),
            lambda: self._fetch_and_decode(ref, task.id, context.label_studio),
        )
        IMAGES_FETCHED.inc()
        return image

    async def _fetch_and_decode(
        self, ref: Any, task_id: int | None, label_studio: LabelStudio | None
    ) -> Image.Image:
        if isinstance(ref, str) and names_a_pdf(ref):  # refused before downloading it
            raise TaskError(f"image {describe(ref)} is {PDF_ADVICE}", reason="pdf")
        data = await self.fetcher.fetch(ref, task_id=task_id, label_studio=label_studio)
        try:
            return await asyncio.to_thread(
                decode_image, data, max_pixels=self.settings.max_image_pixels
            )
        except TaskError as exc:
            raise TaskError(f"image {describe(ref)}: {exc}", reason=exc.reason) from None


def page_refs(task: Task, targets: OcrTargets) -> list[Any]:
    """The page references of a multi-page task, in page order. Raises TaskError.

    One reference alone (a string) is a document of one page.
    """
    value = task.data.get(targets.image_key)
    if value is None:
        keys = ", ".join(sorted(task.data)) or "none"
        raise TaskError(
            f'task {task.id} has no "{targets.image_key}" in its data (it has: {keys}); the '
            "label config's Image tag reads its list of pages from "
            f'valueList="${targets.image_key}"',
            reason="no_image_key",
        )
    refs = value if isinstance(value, list) else [value]
    if not refs:
        raise TaskError(
            f'task {task.id}: its "{targets.image_key}" list of pages is empty; give it one '
            "image URL per page",
            reason="no_pages",
        )
    for index, ref in enumerate(refs):
        if not isinstance(ref, str) or not ref.strip():
            raise TaskError(
                f"task {task.id}: page {index + 1} of {len(refs)} (item_index {index}) in "
                f'"{targets.image_key}" is empty or not a URL ({describe(repr(ref))}); give '
                "every page an image URL",
                reason="empty_page",
            )
    return refs


def images_to_read(tasks: Sequence[Task], targets: OcrTargets) -> int:
    """How many images a /predict holds in the queue: one per task, or one per page."""
    if not targets.multi_page:
        return len(tasks)
    return sum(max(1, _page_count(task.data.get(targets.image_key))) for task in tasks)


def _page_count(value: Any) -> int:
    return len(value) if isinstance(value, list) else 1


def page_error(exc: TaskError, index: int, pages: int) -> TaskError:
    """The same failure, saying on which page of the task it happened."""
    return TaskError(f"page {index + 1} of {pages} (item_index {index}): {exc}", reason=exc.reason)


def _crops(image: Image.Image, geometries: Sequence[dict[str, Any]]) -> list[np.ndarray | None]:
    pixels = np.asarray(image)
    return [crop_region(pixels, geometry) for geometry in geometries]


async def _nothing() -> list[TextLine]:
    return []
