"""Reading in this process: THREADS threads, each with EasyOCR readers it built itself.

Reading blocks for seconds, so it runs in a bounded thread pool and the
event loop stays free for `/health` and for fetching the next images. A
reader is only fast in the thread that built it: EasyOCR's quantized
recogniser took 4.5 s instead of 0.85 s per page when another thread had
built it, which made the service 1.6 times slower than bare EasyOCR. So
each thread builds its stock reader at start-up, and the readers of
per-project recognisers when first asked for them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..images.crop import Crop
from ..images.planes import as_planes
from ..metrics import ENGINE_LOAD_SECONDS, OCR_SECONDS
from .drawn import read_drawn
from .easyocr_reader import NAME
from .lines import TextLine
from .reader import ReaderFactory
from .text_reader import TextReader, read_page

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)

# Readers of per-project recognisers each OCR thread keeps beside its stock one, the least
# recently used let go first: each holds a detector and a recogniser (about 100 MB).
RECOGNISERS_PER_THREAD = 2

BuildReader = Callable[[Path | None], TextReader]


class LocalEngine:
    """THREADS OCR threads of this process, each with its own readers."""

    def __init__(
        self,
        build_reader: BuildReader,
        *,
        languages: Sequence[str],
        device: str,
        threads: int = 1,
        name: str = NAME,
        version: str = "",
    ) -> None:
        """Start `threads` OCR threads, each with a stock reader it builds itself, before
        returning. `build_reader(recogniser)` builds one (ReaderFactory.build)."""
        self.name = name
        self.version = version
        self.languages = tuple(languages)
        self.device = device
        self.threads = threads
        self._build_reader = build_reader
        self._local = threading.local()
        self._readers: list[TextReader] = []
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
            self._local.reader = self._build_reader(None)
        except BaseException:
            ready.abort()
            raise
        self._local.recognisers = OrderedDict()
        self._readers.append(self._local.reader)
        ready.wait()

    @classmethod
    def load(
        cls, settings: Settings, *, threads: int | None = None, torch_threads: int | None = None
    ) -> LocalEngine:
        """Locate the weights, pick the device, load the readers. Raises StartupError.

        `threads`: OCR threads, THREADS by default; `torch_threads`: see ReaderFactory.
        """
        started = time.perf_counter()
        threads = threads or settings.threads
        factory = ReaderFactory(settings, torch_threads=torch_threads)
        engine = cls(
            factory.build,
            languages=factory.languages,
            device=factory.device,
            threads=threads,
            name=factory.name,
            version=factory.version,
        )
        took = time.perf_counter() - started
        ENGINE_LOAD_SECONDS.set(took)
        log.info(
            "%s %s loaded: languages %s on %s, %d thread(s), in %.1f s",
            factory.name,
            factory.version,
            ",".join(factory.languages),
            factory.device,
            threads,
            took,
        )
        return engine

    @property
    def reader(self) -> TextReader:
        """This OCR thread's stock reader; elsewhere (tests, benchmarks) the first one."""
        return getattr(self._local, "reader", None) or self._readers[0]

    def _reader_for(self, recogniser: Path | None) -> TextReader:
        """This OCR thread's reader with `recogniser`'s weights (None: the stock one)."""
        if recogniser is None:
            return self.reader
        readers: OrderedDict[Path, TextReader] = self._local.recognisers
        if recogniser in readers:
            readers.move_to_end(recogniser)
        else:
            readers[recogniser] = self._build_reader(recogniser)
            while len(readers) > RECOGNISERS_PER_THREAD:
                readers.popitem(last=False)
        return readers[recogniser]

    async def read(self, image: np.ndarray, recogniser: Path | None = None) -> list[TextLine]:
        """Every line of text in a colour+grey or RGB image, read in the thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._read, image, recogniser)

    def _read(self, image: np.ndarray, recogniser: Path | None) -> list[TextLine]:
        started = time.perf_counter()
        lines = read_page(self._reader_for(recogniser), as_planes(image))
        took = time.perf_counter() - started
        OCR_SECONDS.observe(took)
        self.seconds_per_image = 0.8 * self.seconds_per_image + 0.2 * took
        return lines

    async def read_region(self, crop: Crop, recogniser: Path | None = None) -> list[TextLine]:
        """The text in a region a user drew (ocr/drawn.py), read in the thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._read_region, crop, recogniser)

    def _read_region(self, crop: Crop, recogniser: Path | None) -> list[TextLine]:
        return read_drawn(self._reader_for(recogniser), crop)

    def health(self) -> dict[str, Any]:
        """Nothing to add to /health: this process's threads are up while it runs."""
        return {}

    async def ready(self) -> None:
        """This process's threads can always read."""

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
