"""EasyOCR behind a small async interface.

The reader is loaded once per process; reading blocks for seconds, so it
runs in a bounded thread pool and the event loop stays free for `/health`
and for fetching the next images. With RAY_ADDRESS set, `load_engine` gives
a pool of Ray actors with the same interface instead (ocr/cluster.py).

Images come as images/planes.py lays them out: colour for EasyOCR's
detector and, beside it, the grey its recogniser reads, so that a page reads
exactly as `readtext` reads the file it came from. A plain RGB array is
taken too, its grey made from its colour.
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

from .images.crop import Crop
from .images.planes import as_planes, colour, grey
from .metrics import ENGINE_LOAD_SECONDS, OCR_SECONDS
from .ocr.drawn import read_drawn
from .ocr.lines import TextLine, to_text_line
from .ocr.reader import reader_factory
from .ocr.text_reader import Detected

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

    async def read_region(self, crop: Crop) -> list[TextLine]: ...

    def read_sync(self, image: np.ndarray) -> list[TextLine]: ...

    def read_region_sync(self, crop: Crop) -> list[TextLine]: ...

    def health(self) -> dict[str, Any]: ...

    async def ready(self) -> None:
        """Returns once the engine can read; raises a RequestError (503) when it cannot."""
        ...

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
        """Detect and read every line of text in a colour+grey or RGB image (blocking).

        What `readtext` does, with the colour and the grey it would have
        decoded from the file; texts trimmed, empty ones left out.
        """
        started = time.perf_counter()
        found = self._detect_and_recognize(as_planes(image))
        took = time.perf_counter() - started
        OCR_SECONDS.observe(took)
        self.seconds_per_image = 0.8 * self.seconds_per_image + 0.2 * took
        return found

    def _detect_and_recognize(self, planes: np.ndarray) -> list[TextLine]:
        # readtext's own two steps; it would take a colour array for BGR and grey it wrongly.
        horizontal, free = self.reader.detect(
            colour(planes), height_ths=self.height_ths, reformat=False
        )
        found = self.reader.recognize(grey(planes), horizontal[0], free[0], reformat=False)
        return _lines(found)

    async def read(self, image: np.ndarray) -> list[TextLine]:
        """`read_sync` in the engine's thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.read_sync, image)

    def read_region_sync(self, crop: Crop) -> list[TextLine]:
        """Read the text in a region a user drew (blocking): ocr/drawn.py."""
        started = time.perf_counter()
        planes = as_planes(crop.image)
        lines = read_drawn(_Reader(self.reader, self.height_ths), Crop(planes, crop.drawn))
        OCR_SECONDS.observe(time.perf_counter() - started)
        return lines

    async def read_region(self, crop: Crop) -> list[TextLine]:
        """`read_region_sync` in the engine's thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.read_region_sync, crop)

    def health(self) -> dict[str, Any]:
        """Nothing to add to /health: this process's threads are up while it runs."""
        return {}

    async def ready(self) -> None:
        """This process's threads can always read."""

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _lines(found: list[tuple[Any, Any, Any]]) -> list[TextLine]:
    """EasyOCR's `(box, text, score)` triples as TextLines, texts trimmed, empty ones left out."""
    lines = (to_text_line(box, str(text).strip(), score) for box, text, score in found)
    return [line for line in lines if line.text]


class _Reader:
    """One EasyOCR reader as ocr/text_reader.py's TextReader."""

    def __init__(self, reader: easyocr.Reader, height_ths: float) -> None:
        self.reader, self.height_ths = reader, height_ths

    def detect(self, planes: np.ndarray) -> Detected:
        horizontal, free = self.reader.detect(
            colour(planes), height_ths=self.height_ths, reformat=False
        )
        return Detected(horizontal=horizontal[0], free=free[0])

    def recognise(self, planes: np.ndarray, found: Detected) -> list[TextLine]:
        return _lines(
            self.reader.recognize(grey(planes), found.horizontal, found.free, reformat=False)
        )
