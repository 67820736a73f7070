"""EasyOCR behind a small async interface.

The reader is loaded once per process; `readtext` blocks for seconds, so it
runs in a bounded thread pool and the event loop stays free for `/health`
and for fetching the next images. With RAY_ADDRESS set, `load_engine` gives
a pool of Ray actors with the same interface instead (ocr/cluster.py).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .metrics import ENGINE_LOAD_SECONDS, OCR_SECONDS
from .ocr.ink import ink_box, ink_mask, is_one_line
from .ocr.lines import TextLine, to_text_line
from .ocr.reader import reader_factory

if TYPE_CHECKING:
    import easyocr

    from .settings import Settings

log = logging.getLogger(__name__)


class Engine(Protocol):
    """What the predictor needs of an engine: this process's threads, or a Ray pool."""

    languages: tuple[str, ...]
    device: str
    threads: int  # images read at once: the predictor decodes this many (+2) ahead
    seconds_per_image: float

    async def read(self, image: np.ndarray) -> list[TextLine]: ...

    async def read_region(self, crop: np.ndarray) -> list[TextLine]: ...

    def read_sync(self, image: np.ndarray) -> list[TextLine]: ...

    def read_region_sync(self, crop: np.ndarray) -> list[TextLine]: ...

    def health(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def load_engine(settings: Settings) -> Engine:
    """The engine the settings ask for. Raises StartupError.

    Ray is imported only when RAY_ADDRESS is set: the embedded default
    neither needs it installed nor pays its start-up.
    """
    if settings.ray_address is None:
        return OcrEngine.load(settings)
    from .ocr.cluster import ClusterEngine

    return ClusterEngine.load(settings, one_reader_engine)


def one_reader_engine(settings: Settings) -> OcrEngine:
    """The in-process engine of one Ray actor: one thread, torch sized to the actor's CPUs."""
    import torch

    build_reader, device = reader_factory(settings)
    if device == "cpu":
        # reader_factory sizes torch for the whole machine; this actor has only its CPUs.
        torch.set_num_threads(max(1, int(settings.ray_actor_cpus)))
    return OcrEngine(
        build_reader,
        languages=settings.lang_list,
        device=device,
        threads=1,
        height_ths=settings.height_ths,
    )


class OcrEngine:
    """One loaded EasyOCR reader and the thread pool that runs it."""

    def __init__(
        self,
        build_reader: Callable[[], easyocr.Reader],
        *,
        languages: Sequence[str],
        device: str,
        threads: int = 1,
        height_ths: float = 0.5,
    ) -> None:
        """Start `threads` OCR threads, each with a reader it builds itself, before returning.

        A reader is only fast in the thread that built it: EasyOCR's quantized
        recognizer took 4.5 s instead of 0.85 s per page when another thread had
        built it, which made the service 1.6 times slower than bare EasyOCR.
        """
        self.languages = tuple(languages)
        self.device = device
        self.threads = threads
        self.height_ths = height_ths
        self._build_reader = build_reader
        self._local = threading.local()
        self._readers: list[easyocr.Reader] = []
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ocr")
        # Recent seconds per image, for the queue's Retry-After estimate.
        self.seconds_per_image = 1.0
        # Every thread must take one of these jobs: the barrier holds each until all started.
        ready = threading.Barrier(threads)
        jobs = [self._pool.submit(self._start_thread, ready) for _ in range(threads)]
        try:
            for job in jobs:
                job.result()
        except BaseException:
            self._pool.shutdown(wait=False, cancel_futures=True)
            raise

    def _start_thread(self, ready: threading.Barrier) -> None:
        try:
            self._local.reader = self._build_reader()
        except BaseException:
            ready.abort()
            raise
        self._readers.append(self._local.reader)
        ready.wait()

    @property
    def reader(self) -> easyocr.Reader:
        """This OCR thread's reader; elsewhere (tests, benchmarks) the first one."""
        return getattr(self._local, "reader", None) or self._readers[0]

    @classmethod
    def load(cls, settings: Settings) -> OcrEngine:
        """Locate the weights, pick the device, load EasyOCR. Raises StartupError."""
        import easyocr

        started = time.perf_counter()
        build_reader, device = reader_factory(settings)
        engine = cls(
            build_reader,
            languages=settings.lang_list,
            device=device,
            threads=settings.threads,
            height_ths=settings.height_ths,
        )
        took = time.perf_counter() - started
        ENGINE_LOAD_SECONDS.set(took)
        log.info(
            "EasyOCR %s loaded: languages %s on %s, %d thread(s), in %.1f s",
            easyocr.__version__,
            ",".join(settings.lang_list),
            device,
            settings.threads,
            took,
        )
        return engine

    def read_sync(self, image: np.ndarray) -> list[TextLine]:
        """Detect and read every line of text in an RGB image (blocking)."""
        started = time.perf_counter()
        found = self.reader.readtext(image, height_ths=self.height_ths)
        took = time.perf_counter() - started
        OCR_SECONDS.observe(took)
        self.seconds_per_image = 0.8 * self.seconds_per_image + 0.2 * took
        return [to_text_line(box, text, score) for box, text, score in found]

    async def read(self, image: np.ndarray) -> list[TextLine]:
        """`read_sync` in the engine's thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.read_sync, image)

    def read_region_sync(self, crop: np.ndarray) -> list[TextLine]:
        """Read the text in a small RGB crop a user drew (blocking).

        A crop that holds one line of text is recognised whole: detection
        would cost several times what recognition does (bench/interactive.py).
        Anything else goes through detection, which splits it into lines;
        when that finds nothing in a crop that is not blank (a lone character
        under its size limit), the crop is recognised whole after all.
        """
        ink = ink_mask(crop)
        if not ink.any():
            return []
        if is_one_line(ink):
            return self._recognize_whole(crop, ink)
        return self.read_sync(crop) or self._recognize_whole(crop, ink)

    def _recognize_whole(self, crop: np.ndarray, ink: np.ndarray) -> list[TextLine]:
        """Recognise the crop's ink as one line, in a box as tight as detection would draw."""
        box = list(ink_box(ink))
        # `recognize` greys the crop as `readtext` does.
        found = self.reader.recognize(crop, horizontal_list=[box], free_list=[])
        return [to_text_line(box, text, score) for box, text, score in found if str(text).strip()]

    async def read_region(self, crop: np.ndarray) -> list[TextLine]:
        """`read_region_sync` in the engine's thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.read_region_sync, crop)

    def health(self) -> dict[str, Any]:
        """Nothing to add to /health: this process's threads are up while it runs."""
        return {}

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
