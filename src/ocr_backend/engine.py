"""The engine's face: what the service needs of whatever reads the images.

Two engines stand behind it: this process's OCR threads (ocr/local.py) and,
with RAY_ADDRESS set, a pool of Ray actors (ocr/cluster.py) held by a child
process (ocr/cluster_process.py). Both read with
TextReaders (ocr/text_reader.py) and read drawn regions the same way
(ocr/drawn.py); the predictor and everything above it do not know which
one reads.

Images come as images/planes.py lays them out: colour for the detector and,
beside it, the grey the recogniser reads, so that a page reads exactly as
EasyOCR's `readtext` reads the file it came from. A plain RGB array is taken
too, its grey made from its colour.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .images.crop import Crop
from .ocr.lines import TextLine
from .ocr.local import LocalEngine

if TYPE_CHECKING:
    from .settings import Settings


class Engine(Protocol):
    """What the predictor needs of an engine: this process's threads, or a Ray pool.

    `recogniser`: a recogniser weights file to read with instead of the
    stock one (a model fine-tuned for one project); None for the stock one.
    """

    name: str  # of the OCR library: "EasyOCR"
    version: str  # of the OCR library: "1.7.2"
    languages: tuple[str, ...]
    device: str
    threads: int  # images read at once: the predictor decodes this many (+2) ahead
    seconds_per_image: float

    async def read(self, image: np.ndarray, recogniser: Path | None = None) -> list[TextLine]:
        """Every line of text in a page (images/planes.py's layout, or RGB)."""
        ...

    async def read_region(self, crop: Crop, recogniser: Path | None = None) -> list[TextLine]:
        """The text in a region a user drew (ocr/drawn.py), lines in crop pixels."""
        ...

    def health(self) -> dict[str, Any]: ...

    async def ready(self) -> None:
        """Returns once the engine can read; raises a RequestError (503) when it cannot."""
        ...

    def close(self) -> None: ...


def load_engine(settings: Settings) -> Engine:
    """The engine the settings ask for. Raises StartupError.

    Ray is imported only when RAY_ADDRESS is set, and then in a child process
    that holds the pool (ocr/cluster_process.py): the embedded default neither
    needs it installed nor pays its start-up, and a lost cluster cannot end
    this process.
    """
    if settings.ray_address is None:
        return LocalEngine.load(settings)
    from .ocr.cluster_process import ClusterProcess

    return ClusterProcess.load(settings)
