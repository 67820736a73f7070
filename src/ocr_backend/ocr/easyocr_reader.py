"""EasyOCR as a TextReader: one `easyocr.Reader`, fed the pictures its own `readtext` would decode.

`readtext` reads an image file twice: its detector gets the colour picture,
its recogniser a grey one OpenCV decodes from the same file. A page comes
here as images/planes.py lays it out, both pictures in one array, so it
reads exactly as `readtext` reads the file it came from; handing EasyOCR an
RGB array instead, it would take it for BGR and grey it wrongly.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..images.planes import as_planes, colour, grey
from .lines import TextLine, to_text_line
from .text_reader import Detected

if TYPE_CHECKING:
    import easyocr

NAME = "EasyOCR"

# The recogniser networks EasyOCR builds for its stock weights (easyocr.Reader.__init__):
# the module of the network's class, its generation, and the sizes it is built with.
_NETWORKS = {
    "easyocr.model.model": ("generation1", 512),
    "easyocr.model.vgg_model": ("generation2", 256),
}


def easyocr_version() -> str:
    """The installed EasyOCR's version, without importing it (and torch) to ask."""
    return version("easyocr")


class EasyOcrReader:
    """One `easyocr.Reader` behind the TextReader interface."""

    def __init__(self, reader: easyocr.Reader, *, height_ths: float = 0.5) -> None:
        self.easyocr = reader  # EasyOCR's own reader: its readtext, detector, recognizer
        self.height_ths = height_ths

    def detect(self, planes: np.ndarray, scale: float = 1.0) -> Detected:
        # The colour picture, as readtext's detector gets it. EasyOCR's `mag_ratio` resizes
        # it for the detector and scales what it finds back, so its smallest box size
        # (min_size) and box margins stay in the picture's own pixels.
        horizontal, free = self.easyocr.detect(
            colour(as_planes(planes)),
            height_ths=self.height_ths,
            mag_ratio=scale,
            reformat=False,
        )
        return Detected(horizontal[0], free[0])

    def recognise(self, planes: np.ndarray, found: Detected) -> list[TextLine]:
        # The grey picture, as readtext's recogniser gets it.
        read = self.easyocr.recognize(
            grey(as_planes(planes)),
            horizontal_list=found.horizontal,
            free_list=found.free,
            reformat=False,
        )
        return _lines(read)


def load_recogniser(reader: easyocr.Reader, weights: Path, languages: Sequence[str]) -> None:
    """Put the recogniser weights in `weights` in place of the reader's stock ones.

    The network is built as EasyOCR builds its own (same class, sizes,
    characters and, on the CPU, quantization), so a fine-tuned copy of the
    stock recogniser reads with everything else unchanged. EasyOCR itself
    would refuse such a file: it checks the stock file's MD5.
    """
    from easyocr.config import BASE_PATH
    from easyocr.recognition import get_recognizer

    stock = getattr(reader.recognizer, "module", reader.recognizer)  # DataParallel on a GPU
    generation, size = _NETWORKS[type(stock).__module__]
    sizes = {"input_channel": 1, "output_channel": size, "hidden_size": size}
    dictionaries = {lang: str(Path(BASE_PATH) / "dict" / f"{lang}.txt") for lang in languages}
    reader.recognizer, reader.converter = get_recognizer(
        generation,
        sizes,
        reader.character,
        {},
        dictionaries,
        str(weights),
        device=reader.device,
        quantize=True,
    )


def _lines(found: list[tuple[Any, Any, Any]]) -> list[TextLine]:
    """EasyOCR's `(box, text, score)` triples as TextLines, texts trimmed, empty ones left out."""
    lines = (to_text_line(box, str(text).strip(), score) for box, text, score in found)
    return [line for line in lines if line.text]
