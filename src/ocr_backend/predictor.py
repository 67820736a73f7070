"""One task -> its prediction: every line of its page(s), or the regions a user just drew.

The route decides which (http/routes.py): drawn regions are read here and
now (`Predictor.read_drawn`); whole pages go through the job queue (jobs/),
whose runner calls `Predictor.read_page`. Images are fetched and decoded
concurrently while the engine reads the ones already in hand; a bounded
number of images is held at once, across all requests, so neither a job of
100 tasks nor 100 requests of one task decode 100 images into memory together.

A multi-page task (`<Image valueList="$pages">`) is read page by page through
the same bound: each page is one image, and each region names its page with
`item_index`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .convert import page_prediction
from .engine import Engine
from .errors import ClusterUnavailable, RequestError, TaskError, TooManyPages
from .images.cache import ImageCache
from .images.crop import Crop, crop_region, region_bounds, within
from .images.decode import PDF_ADVICE, decode_page
from .images.fetch import describe, names_a_pdf
from .label_studio.config import OcrTargets
from .label_studio.regions import DrawnRegion, reading_order, region_items
from .label_studio.schemas import NotPredicted, Prediction, Task
from .label_studio.storage import LabelStudio, LabelStudioImageFetcher
from .metrics import IMAGES_FAILED, IMAGES_FETCHED
from .ocr.lines import TextLine, mean_score
from .ocr.precision import version_suffix
from .priority import ImageSlots, Priority, PriorityGate
from .settings import Settings

log = logging.getLogger(__name__)


def model_version(settings: Settings, engine: Engine) -> str:
    """Changes whenever the OCR library or a setting that changes the output changes, so
    Label Studio asks again: `easyocr-1.7.2-en-4cbfbf46`."""
    output_settings = {
        "languages": list(settings.lang_list),
        "score_threshold": settings.score_threshold,
        "height_ths": settings.height_ths,
        "label_mappings": settings.label_mappings,
    }
    digest = hashlib.sha256(json.dumps(output_settings, sort_keys=True).encode()).hexdigest()
    library = f"{engine.name.lower()}-{engine.version}"
    # Not in the digest: fp32 keeps the versions it always had; bf16 reads differ, and say so.
    suffix = version_suffix(settings.precision)
    return f"{library}-{'+'.join(settings.lang_list)}-{digest[:8]}{suffix}"


class ProjectModel(Protocol):
    """A fine-tuned recogniser serving one project (training/registry.py makes them)."""

    @property
    def version(self) -> str: ...
    @property
    def weights(self) -> Path: ...


@dataclass(frozen=True)
class PredictContext:
    """What one /predict brings beside its tasks.

    `label_studio`: where the project's images live and with which token
    (None: only the settings name Label Studio). `request_id`: for the log
    lines about this request's tasks.
    """

    label_studio: LabelStudio | None = None
    request_id: str = "-"
    # Label Studio's project ("7.1763892800" or "7"): a project with a fine-tuned recogniser
    # is read with it, and its predictions carry its model version (docs/training.md).
    project: str | None = None


class Predictor:
    def __init__(
        self, engine: Engine, fetcher: LabelStudioImageFetcher, settings: Settings
    ) -> None:
        self.engine = engine
        self.fetcher = fetcher
        self.settings = settings
        self.model_version = model_version(settings, engine)
        # The fine-tuned model serving a project, if any (training/trainer.py's model_for).
        self.project_models: Callable[[str | None], ProjectModel | None] = lambda project: None
        # The engine's threads plus a couple of images decoded ahead of them, shared by
        # all requests: the memory held stays bounded however many requests wait. Bulk
        # work never holds the last place, so an annotator's image is fetched at once
        # even while a job holds all the others.
        self.images_in_hand = engine.threads + 2
        self.slots = ImageSlots(self.images_in_hand)
        # In front of the engine itself: a freed thread goes to people before bulk work.
        self.engine_gate = PriorityGate(engine.threads)
        self.image_cache = ImageCache(settings.image_cache_bytes)

    def version_for(self, context: PredictContext | None) -> str:
        """The model version a prediction for this context carries."""
        model = self._project_model(context)
        return model.version if model else self.model_version

    def _project_model(self, context: PredictContext | None) -> ProjectModel | None:
        if context is None or context.project is None:
            return None
        return self.project_models(context.project)

    def _recogniser(self, context: PredictContext) -> Path | None:
        model = self._project_model(context)
        return model.weights if model else None

    async def read_page(
        self,
        task: Task,
        targets: OcrTargets,
        context: PredictContext,
        priority: Priority,
        at_engine: asyncio.Event | None = None,
    ) -> Prediction:
        """Every line of the task's image, as regions. Raises TaskError.

        `at_engine` is set once the engine starts reading it: a stop lets such
        a read finish, and puts back the ones still waiting.
        """
        if targets.multi_page:
            return await self._read_pages(task, targets, context, priority, at_engine)
        page, lines = await self._load_and_read(
            lambda: self._load_image(task, targets, context),
            priority,
            at_engine,
            self._recogniser(context),
        )
        height, width = page.shape[:2]
        return self._prediction([(lines, width, height)], targets, context)

    # -- multi-page tasks: <Image valueList="$pages"> -------------------------------------

    async def _read_pages(
        self,
        task: Task,
        targets: OcrTargets,
        context: PredictContext,
        priority: Priority,
        at_engine: asyncio.Event | None = None,
    ) -> Prediction:
        """Every page of a multi-page task, fetched concurrently, each read in its own slot.

        The first page that fails fails the task, with its page number in the
        reason; the pages still waiting are not read. Raises TaskError.
        """
        refs = page_refs(task, targets)
        reads = [
            asyncio.ensure_future(
                self._read_one_page(task, ref, index, len(refs), context, priority, at_engine)
            )
            for index, ref in enumerate(refs)
        ]
        try:
            pages = await asyncio.gather(*reads)
        finally:
            for read in reads:
                read.cancel()
        return self._prediction(pages, targets, context)

    def _prediction(
        self,
        pages: Sequence[tuple[list[TextLine], int, int]],
        targets: OcrTargets,
        context: PredictContext,
    ) -> Prediction:
        return page_prediction(
            pages,
            targets,
            score_threshold=self.settings.score_threshold,
            model_version=self.version_for(context),
        )

    async def _read_one_page(
        self,
        task: Task,
        ref: Any,
        index: int,
        pages: int,
        context: PredictContext,
        priority: Priority,
        at_engine: asyncio.Event | None,
    ) -> tuple[list[TextLine], int, int]:
        """One page's lines and size; a TaskError names the page."""
        try:
            page, lines = await self._load_and_read(
                lambda: self._load_ref(ref, task, context),
                priority,
                at_engine,
                self._recogniser(context),
            )
        except TaskError as exc:
            raise page_error(exc, index, pages) from None
        height, width = page.shape[:2]
        return lines, width, height

    async def _load_and_read(
        self,
        load: Callable[[], Awaitable[np.ndarray]],
        priority: Priority,
        at_engine: asyncio.Event | None,
        recogniser: Path | None = None,
    ) -> tuple[np.ndarray, list[TextLine]]:
        """A page loaded in one of the priority's image slots, then read when the engine
        lets this priority in; `at_engine` is set as the engine starts reading it."""
        async with self.slots.slot(priority):
            page = await load()
            async with self.engine_gate.slot(priority):
                if at_engine is not None:
                    at_engine.set()
                return page, await self.engine.read(page, recogniser=recogniser)

    async def read_drawn(
        self,
        task: Task,
        targets: OcrTargets,
        regions: Sequence[DrawnRegion],
        context: PredictContext,
    ) -> Prediction | NotPredicted:
        """The text inside each region the user drew, as the region's textarea item.

        A task that cannot be read comes back as NotPredicted; a RequestError
        (a lost cluster: 503) refuses the whole request.
        """
        result: list[dict[str, Any]] = []
        kept_lines: list[TextLine] = []
        try:
            # The same image slots as whole pages: twenty interactive requests at once
            # decoded twenty pages at once without them.
            texts: dict[int, str] = {}
            async with self.slots.slot(Priority.PEOPLE):
                # Each region is read on the page it was drawn on (its item_index), one page
                # in hand at a time, and one region cut and read at a time: 300 full-page
                # crops built at once held 753 MB.
                for index, on_page in self._pages_drawn_on(task, targets, regions):
                    page = await self._load_drawn_page(task, targets, index, context)
                    for number in on_page:
                        # Cutting a large page takes a while: not on the event loop.
                        crop = await asyncio.to_thread(cut, page, regions[number].geometry)
                        lines = (
                            await self._read_region(crop, self._recogniser(context))
                            if crop is not None
                            else []
                        )
                        del crop
                        kept = self._confident(lines)
                        kept_lines.extend(kept)
                        texts[number] = reading_order(kept)
                    del page
            for number, region in enumerate(regions):
                result.extend(region_items(region, targets, texts[number]))
        except RequestError:
            raise
        except Exception as exc:  # whatever one task raises is its own error, not the batch's
            return self.failed(task, exc, context)
        return Prediction(
            result=result, score=mean_score(kept_lines), model_version=self.version_for(context)
        )

    def _pages_drawn_on(
        self, task: Task, targets: OcrTargets, regions: Sequence[DrawnRegion]
    ) -> list[tuple[int, list[int]]]:
        """Each page index that regions were drawn on, with those regions' positions."""
        if not targets.multi_page:
            return [(0, list(range(len(regions))))]
        pages: dict[int, list[int]] = {}
        for number, region in enumerate(regions):
            pages.setdefault(region.item_index or 0, []).append(number)
        return sorted(pages.items())

    async def _load_drawn_page(
        self, task: Task, targets: OcrTargets, index: int, context: PredictContext
    ) -> np.ndarray:
        """The page a region was drawn on. Raises TaskError naming the page."""
        if not targets.multi_page:
            return await self._load_image(task, targets, context)
        refs = page_refs(task, targets)
        if index >= len(refs):
            raise TaskError(
                f"task {task.id}: a region was drawn on page {index + 1} (item_index "
                f"{index}), but the task has {len(refs)} page(s)",
                reason="page",
            )
        try:
            return await self._load_ref(refs[index], task, context)
        except TaskError as exc:
            raise page_error(exc, index, len(refs)) from None

    async def _read_region(self, crop: Crop, recogniser: Path | None = None) -> list[TextLine]:
        async with self.engine_gate.slot(Priority.PEOPLE):
            return await self.engine.read_region(crop, recogniser=recogniser)

    def _confident(self, lines: Sequence[TextLine]) -> list[TextLine]:
        """The lines read at SCORE_THRESHOLD or above."""
        return [line for line in lines if line.score >= self.settings.score_threshold]

    def failed(self, task: Task, exc: Exception, context: PredictContext) -> NotPredicted:
        """A task that could not be read: no `result`, so Label Studio asks again later.

        An empty `result` would be stored, and the task never asked for again.
        A TaskError says what the user can do; anything else is a bug or a library failing
        on hostile input: logged with its traceback, answered by its kind and the request id.
        """
        if isinstance(exc, TaskError):
            reason, message = exc.reason, str(exc)
            log.warning("request %s: task %s: %s", context.request_id, task.id, message)
        elif isinstance(exc, ClusterUnavailable):
            # The Ray cluster lost while this task was read: no bug, and said once in the log
            # (ocr/cluster_process.py); the next request is answered 503.
            reason = "cluster_unavailable"
            message = f"task {task.id} could not be read: {exc}"
        else:
            reason = "unexpected"
            message = (
                f"task {task.id} could not be read: {type(exc).__name__}; the service log has "
                f"the details under request id {context.request_id}"
            )
            log.error(
                "request %s: task %s: unexpected error", context.request_id, task.id, exc_info=exc
            )
        IMAGES_FAILED.labels(reason).inc()
        return NotPredicted(
            model_version=self.version_for(context), status="failed", reason=reason, error=message
        )

    async def _load_image(
        self, task: Task, targets: OcrTargets, context: PredictContext
    ) -> np.ndarray:
        """The task's decoded page (images/planes.py), cached or fetched. Raises TaskError."""
        ref = task.data.get(targets.image_key)
        if ref is None:
            shown = [key if len(key) <= 40 else key[:37] + "..." for key in sorted(task.data)[:10]]
            keys = ", ".join(shown) + (", ..." if len(task.data) > 10 else "") or "none"
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

    async def _load_ref(self, ref: Any, task: Task, context: PredictContext) -> np.ndarray:
        """One decoded page (images/planes.py), from the cache or fetched. Raises TaskError."""
        if isinstance(ref, str) and names_a_pdf(ref):  # refused before downloading it
            raise TaskError(f"image {describe(ref)} is {PDF_ADVICE}", reason="pdf")
        page = await self.image_cache.get(
            self.fetcher.cache_key(ref, context.label_studio),
            lambda: self._fetch_and_decode(ref, task.id, context.label_studio),
        )
        IMAGES_FETCHED.inc()
        assert isinstance(page, np.ndarray)  # the cache holds what _fetch_and_decode made
        return page

    async def _fetch_and_decode(
        self, ref: Any, task_id: int | None, label_studio: LabelStudio | None
    ) -> np.ndarray:
        data = await self.fetcher.fetch(ref, task_id=task_id, label_studio=label_studio)
        try:
            return await asyncio.to_thread(
                decode_page, data, max_pixels=self.settings.max_image_pixels
            )
        except TaskError as exc:
            raise TaskError(f"image {describe(ref)}: {exc}", reason=exc.reason) from None


def cut(page: np.ndarray, geometry: dict[str, Any]) -> Crop | None:
    """The region's upright crop, cut from the part of the page under it only (a view, no
    copy), with where in the crop the region lies."""
    height, width = page.shape[:2]
    box = region_bounds(geometry, width, height)
    if box is None:
        return None
    left, top, right, bottom = box
    return crop_region(page[top:bottom, left:right], within(geometry, box, width, height))


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


def images_to_read(
    tasks: Sequence[Task], targets: OcrTargets, drawn: Sequence[DrawnRegion] | None = None
) -> int:
    """How many images a /predict holds in the queue: one per task, or one per page.

    With regions a user drew, only the pages they were drawn on are read: a box on
    page 8 of a 300-page document is one image, not 300 (which got 413 under MAX_QUEUE).
    """
    if not targets.multi_page:
        return len(tasks)
    if drawn is not None:
        return len(tasks) * max(1, len({region.item_index or 0 for region in drawn}))
    return sum(max(1, _page_count(task.data.get(targets.image_key))) for task in tasks)


def check_pages(tasks: Sequence[Task], targets: OcrTargets, settings: Settings) -> None:
    """Refuse a task of more than MAX_PAGES pages, or more than MAX_PREDICT_IMAGES images.

    Bulk requests wait on disk, not under MAX_QUEUE: without these two tasks of
    150,000 pages each were queued whole (809 MB more, /health stalled 8.2 s).
    """
    if targets.multi_page:
        for task in tasks:
            pages = _page_count(task.data.get(targets.image_key))
            if pages > settings.max_pages:
                raise TooManyPages.in_task(task.id, pages, settings.max_pages)
    images = images_to_read(tasks, targets)
    if images > settings.max_predict_images:
        raise TooManyPages.in_request(images, settings.max_predict_images)


def _page_count(value: Any) -> int:
    return len(value) if isinstance(value, list) else 1


def page_error(exc: TaskError, index: int, pages: int) -> TaskError:
    """The same failure, saying on which page of the task it happened."""
    return TaskError(f"page {index + 1} of {pages} (item_index {index}): {exc}", reason=exc.reason)
