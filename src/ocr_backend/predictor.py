"""One /predict request: fetch every task's image, read it, convert it, keep task order.

Images are fetched and decoded concurrently while the engine reads the ones
already in hand; a bounded number of images is held at once so a request of
100 tasks does not decode 100 images into memory together.
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
from .images import ImageError, ImageFetcher, decode_image, describe
from .labeling import OcrTargets
from .schemas import Prediction, Task
from .settings import Settings

log = logging.getLogger(__name__)


class TaskError(Exception):
    """This task cannot be predicted; the message goes into its prediction's `error`."""


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
        # The engine's threads plus a couple of images decoded ahead of them.
        self.images_in_hand = engine.threads + 2

    async def predict(self, tasks: Sequence[Task], targets: OcrTargets) -> list[Prediction]:
        slots = asyncio.Semaphore(self.images_in_hand)
        return list(await asyncio.gather(*(self._predict_task(t, targets, slots) for t in tasks)))

    async def _predict_task(
        self, task: Task, targets: OcrTargets, slots: asyncio.Semaphore
    ) -> Prediction:
        try:
            async with slots:
                image = await self.load_image(task, targets)
                lines = await self.engine.read(np.asarray(image))
        except (TaskError, ImageError) as exc:
            log.warning("task %s: %s", task.id, exc)
            return Prediction(
                result=[], score=0.0, model_version=self.model_version, error=str(exc)
            )
        kept = [line for line in lines if line.score >= self.settings.score_threshold]
        return Prediction(
            result=lines_to_regions(kept, targets, image.width, image.height),
            score=mean_score(kept),
            model_version=self.model_version,
        )

    async def load_image(self, task: Task, targets: OcrTargets) -> Any:
        ref = task.data.get(targets.image_key)
        if ref is None:
            keys = ", ".join(sorted(task.data)) or "none"
            raise TaskError(
                f'task {task.id} has no "{targets.image_key}" in its data (it has: {keys}); '
                f"the label config's Image tag reads ${targets.image_key}"
            )
        data = await self.fetcher.fetch(ref, task_id=task.id)
        try:
            return await asyncio.to_thread(
                decode_image, data, max_pixels=self.settings.max_image_pixels
            )
        except ImageError as exc:
            raise TaskError(f"image {describe(ref)}: {exc}") from None


def mean_score(lines: Sequence[TextLine]) -> float:
    return sum(line.score for line in lines) / len(lines) if lines else 0.0
