"""EasyOCR behind a small async interface.

The reader is loaded once per process; `readtext` blocks for seconds, so it
runs in a bounded thread pool and the event loop stays free for `/health`
and for fetching the next images.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .metrics import ENGINE_LOAD_SECONDS, OCR_SECONDS
from .weights import locate_weights, one_folder

if TYPE_CHECKING:
    import easyocr

    from .settings import Settings

log = logging.getLogger(__name__)

Point = tuple[float, float]


class EngineError(Exception):
    """The engine cannot start; the message says what to do."""


class DeviceUnavailable(EngineError):
    pass


@dataclass(frozen=True, slots=True)
class TextLine:
    """One line of text EasyOCR found: four corners in pixels, clockwise from top-left."""

    polygon: tuple[Point, Point, Point, Point]
    text: str
    score: float


def resolve_device(requested: str | None) -> str:
    """`cpu`, `cuda:N`; unset means the first GPU when there is one. Never falls back silently."""
    import torch

    if requested is None:
        device = "cuda:0" if torch.cuda.is_available() else "cpu"
        log.info("DEVICE unset: using %s", device)
        return device
    if requested == "cpu":
        return "cpu"
    index = int(requested.partition(":")[2] or 0)
    if not torch.cuda.is_available():
        raise DeviceUnavailable(
            f"DEVICE={requested} but CUDA is not available on this machine "
            "(no NVIDIA GPU or driver visible to PyTorch). Set DEVICE=cpu, or leave it unset."
        )
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceUnavailable(
            f"DEVICE={requested} but this machine has {count} CUDA device(s): "
            f"use one of {', '.join(f'cuda:{i}' for i in range(count))}, or DEVICE=cpu."
        )
    return f"cuda:{index}"


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
        """Locate the weights, pick the device, load EasyOCR. Raises EngineError, WeightsError."""
        import easyocr
        import torch

        started = time.perf_counter()
        device = resolve_device(settings.device)
        weights = locate_weights(settings.lang_list, settings.model_dir, settings.model_download)
        if device == "cpu":
            # THREADS readers share the cores; more torch threads than cores only thrash.
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // settings.threads))

        def build_reader() -> easyocr.Reader:
            with one_folder(weights) as folder:
                reader = easyocr.Reader(
                    list(settings.lang_list),
                    gpu=device,
                    model_storage_directory=str(folder),
                    # EasyOCR creates this folder; never inside site-packages.
                    user_network_directory=str(settings.model_dir / "user_network"),
                    download_enabled=False,
                    verbose=False,
                )
            if settings.detector_runtime == "onnx":
                from .onnx_craft import use_onnx_detector

                use_onnx_detector(
                    reader, device=device, weights=weights, model_dir=settings.model_dir
                )
            # torch sets itself up on the first call: pay that now, not in the first request.
            warm_up = np.full((64, 256, 3), 255, dtype=np.uint8)
            warm_up[24:40, 32:224] = 0
            reader.readtext(warm_up)
            return reader

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
        return [_to_text_line(box, text, score) for box, text, score in found]

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
        ink = _ink(crop)
        if not ink.any():
            return []
        if _is_one_line(ink):
            return self._recognize_whole(crop, ink)
        return self.read_sync(crop) or self._recognize_whole(crop, ink)

    def _recognize_whole(self, crop: np.ndarray, ink: np.ndarray) -> list[TextLine]:
        """Recognise the crop's ink as one line, in a box as tight as detection would draw."""
        height, width = crop.shape[:2]
        rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
        top, bottom, left, right = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
        # EasyOCR's own margin around a detected box (readtext's add_margin=0.1).
        margin = int(0.1 * min(bottom - top, right - left)) + 1
        box = [
            max(0, left - margin),
            min(width, right + margin),
            max(0, top - margin),
            min(height, bottom + margin),
        ]
        # `recognize` greys the crop as `readtext` does.
        found = self.reader.recognize(crop, horizontal_list=[box], free_list=[])
        return [_to_text_line(box, text, score) for box, text, score in found if str(text).strip()]

    async def read_region(self, crop: np.ndarray) -> list[TextLine]:
        """`read_region_sync` in the engine's thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.read_region_sync, crop)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


INK_CONTRAST = 48  # grey levels between paper and ink; JPEG noise stays below it


def _ink(image: np.ndarray) -> np.ndarray:
    """Where the crop differs clearly from its paper (its most common shade)."""
    if image.size == 0:
        return np.zeros(image.shape[:2], dtype=bool)
    grey = image.mean(axis=2) if image.ndim == 3 else image.astype(np.float64)
    return np.abs(grey - np.median(grey)) > INK_CONTRAST


def _is_one_line(ink: np.ndarray) -> bool:
    """One band of inked rows between blank ones, and wider than tall, as a line is.

    Two lines that touch with no blank row between them would pass as one; the
    width check catches most such blocks, and ordinary line spacing leaves a gap.
    """
    width = ink.shape[1]
    inked = ink.sum(axis=1) >= max(2, width * 0.003)  # a stray noise pixel is no ink
    edges = np.flatnonzero(np.diff(np.concatenate(([0], inked.astype(np.int8), [0]))))
    heights = edges[1::2] - edges[::2]
    bands = heights[heights >= 2]  # a speck of one row is no line either
    return len(bands) == 1 and bands[0] * 2 <= width


def _to_text_line(box: Any, text: str, score: Any) -> TextLine:
    corners = tuple((float(x), float(y)) for x, y in box)
    return TextLine(polygon=corners, text=str(text), score=float(score))  # type: ignore[arg-type]
