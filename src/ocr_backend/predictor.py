"""One /predict request: fetch every task's image, read it, convert it, keep task order.

Images are fetched and decoded concurrently while the engine reads the ones
already in hand; a bounded number of images is held at once, across all
requests, so neither a request of 100 tasks nor 100 requests of one task
decode 100 images into memory together.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from .convert import lines_to_regions
from .engine import OcrEngine, TextLine
from .image_cache import ImageCache
from .images import ImageError, ImageFetcher, decode_image, describe
from .labeling import OcrTargets
from .metrics import IMAGES_FAILED, IMAGES_FETCHED
from .observe import current
from .schemas import Prediction, Task
from .settings import Settings

log = logging.getLogger(__name__)


class TaskError(Exception):
    """This task cannot be predicted; the message goes into its prediction's `error`."""

    def __init__(self, message: str, *, reason: str = "task") -> None:
        super().__init__(message)
        self.reason = reason


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


class Predictor:
    def __init__(self, engine: OcrEngine, fetcher: ImageFetcher, settings: Settings) -> None:
        self.engine = engine
        self.fetcher = fetcher
        self.settings = settings
        self.model_version = model_version(settings)
        # The engine's threads plus a couple of images decoded ahead of them, shared by
        # all requests: the memory held stays bounded however many requests wait.
        self.images_in_hand = engine.threads + 2
        self.slots = asyncio.Semaphore(self.images_in_hand)
        self.image_cache = ImageCache(settings.image_cache_bytes)

    async def predict(self, tasks: Sequence[Task], targets: OcrTargets) -> list[Prediction]:
        return list(await asyncio.gather(*(self._predict_task(t, targets) for t in tasks)))

    async def _predict_task(self, task: Task, targets: OcrTargets) -> Prediction:
        try:
            async with self.slots:
                image = await self.load_image(task, targets)
                lines = await self.engine.read(np.asarray(image))
        except (TaskError, ImageError) as exc:
            return self.failed(task, exc)
        kept = self.confident(lines)
        return Prediction(
            result=lines_to_regions(kept, targets, image.width, image.height),
            score=mean_score(kept),
            model_version=self.model_version,
        )

    def confident(self, lines: Sequence[TextLine]) -> list[TextLine]:
        """The lines read at SCORE_THRESHOLD or above."""
        return [line for line in lines if line.score >= self.settings.score_threshold]

    def failed(self, task: Task, exc: TaskError | ImageError) -> Prediction:
        """The prediction of a task whose image could not be had: empty, with the reason."""
        IMAGES_FAILED.labels(exc.reason).inc()
        log.warning("request %s: task %s: %s", current().id, task.id, exc)
        return Prediction(result=[], score=0.0, model_version=self.model_version, error=str(exc))

    async def load_image(self, task: Task, targets: OcrTargets) -> Any:
        """The task's decoded image, from the cache or fetched. Raises TaskError, ImageError."""
        image = await self._load_image(task, targets)
        IMAGES_FETCHED.inc()
        return image

    async def _load_image(self, task: Task, targets: OcrTargets) -> Any:
        ref = task.data.get(targets.image_key)
        if ref is None:
            keys = ", ".join(sorted(task.data)) or "none"
            raise TaskError(
                f'task {task.id} has no "{targets.image_key}" in its data (it has: {keys}); '
                f"the label config's Image tag reads ${targets.image_key}",
                reason="no_image_key",
            )
        return await self.image_cache.get(
            self.fetcher.cache_key(ref), lambda: self._fetch_and_decode(ref, task.id)
        )

    async def _fetch_and_decode(self, ref: Any, task_id: int | None) -> Any:
        data = await self.fetcher.fetch(ref, task_id=task_id)
        try:
            return await asyncio.to_thread(
                decode_image, data, max_pixels=self.settings.max_image_pixels
            )
        except ImageError as exc:
            raise TaskError(f"image {describe(ref)}: {exc}", reason=exc.reason) from None


def mean_score(lines: Sequence[TextLine]) -> float:
    return sum(line.score for line in lines) / len(lines) if lines else 0.0
