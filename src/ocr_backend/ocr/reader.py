"""Building EasyOCR readers from the settings: device, weights, detector runtime, precision.

Serving them (threads, async) is the engines' job (ocr/local.py,
ocr/cluster.py); this module only builds one ready reader at a time.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DeviceUnavailable
from .easyocr_reader import NAME, EasyOcrReader, easyocr_version, load_recogniser
from .precision import apply_precision, check_precision
from .weights import locate_weights, one_folder

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)


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


def check_startup(settings: Settings) -> None:
    """What would stop every reader from loading, checked in seconds. Raises StartupError."""
    check_precision(settings.precision, resolve_device(settings.device))
    locate_weights(settings.lang_list, settings.model_dir, settings.model_download)


class ReaderFactory:
    """Builds warm EasyOCR readers as the settings ask: device, weights, detector runtime.

    Locates the weights and picks the device when made, so a missing file or
    GPU stops start-up before any reader is built. Raises StartupError.
    Precision and per-project recognisers plug in here, not in the engines.
    """

    name = NAME

    def __init__(self, settings: Settings, *, torch_threads: int | None = None) -> None:
        """`torch_threads`: torch's threads on the CPU; by default the cores over THREADS."""
        import torch

        self.settings = settings
        self.languages = tuple(settings.lang_list)
        self.version = easyocr_version()
        self.device = resolve_device(settings.device)
        check_precision(settings.precision, self.device)
        self.weights = locate_weights(
            settings.lang_list, settings.model_dir, settings.model_download
        )
        if self.device == "cpu":
            # THREADS readers share the cores; more torch threads than cores only thrash.
            torch.set_num_threads(
                torch_threads or max(1, (os.cpu_count() or 1) // settings.threads)
            )

    def build(self, recogniser: Path | None = None) -> EasyOcrReader:
        """One warm reader; `recogniser`: a recogniser weights file to read with instead of
        the stock one (a model fine-tuned for one project), None for the stock one."""
        import easyocr

        settings = self.settings
        with one_folder(self.weights) as folder:
            reader = easyocr.Reader(
                list(self.languages),
                gpu=self.device,
                model_storage_directory=str(folder),
                # EasyOCR creates this folder; never inside site-packages.
                user_network_directory=str(settings.model_dir / "user_network"),
                download_enabled=False,
                verbose=False,
            )
        if recogniser is not None:
            load_recogniser(reader, recogniser, self.languages)
        if settings.detector_runtime == "onnx":
            from .onnx_craft import use_onnx_detector

            use_onnx_detector(
                reader, device=self.device, weights=self.weights, model_dir=settings.model_dir
            )
        apply_precision(reader, settings, self.device, self.weights)
        # torch sets itself up on the first call: pay that now, not in the first request.
        warm_up = np.full((64, 256, 3), 255, dtype=np.uint8)
        warm_up[24:40, 32:224] = 0
        reader.readtext(warm_up)
        return EasyOcrReader(reader, height_ths=settings.height_ths)
