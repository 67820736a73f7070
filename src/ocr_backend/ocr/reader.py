"""Building EasyOCR readers from the settings: device, weights, detector runtime, precision.

Serving them (threads, async) is `engine.py`'s job; this module only makes
the function that builds one ready reader.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DeviceUnavailable
from .precision import apply_precision, check_precision
from .weights import locate_weights, one_folder

if TYPE_CHECKING:
    import easyocr

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


def reader_factory(settings: Settings) -> tuple[Callable[[], easyocr.Reader], str]:
    """A function that builds one warm reader, and the device it reads on.

    Locates the weights and picks the device now, so a missing file or GPU
    stops start-up before any reader is built. Raises StartupError.
    """
    import easyocr
    import torch

    device = resolve_device(settings.device)
    check_precision(settings.precision, device)
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

            use_onnx_detector(reader, device=device, weights=weights, model_dir=settings.model_dir)
        apply_precision(reader, settings, device, weights)
        # torch sets itself up on the first call: pay that now, not in the first request.
        warm_up = np.full((64, 256, 3), 255, dtype=np.uint8)
        warm_up[24:40, 32:224] = 0
        reader.readtext(warm_up)
        return reader

    return build_reader, device
