"""Which recogniser EasyOCR reads LANG_LIST with, and the characters it can write."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True, slots=True)
class RecogniserModel:
    """EasyOCR's recogniser for a language list: its name, weight file and alphabet."""

    name: str  # english_g2
    filename: str  # english_g2.pth
    characters: str  # what it can write, in the order of its output classes (after CTC's blank)
    generation: str  # generation1 or generation2 (easyocr/model/model.py or vgg_model.py)


@cache
def recogniser_model(languages: Sequence[str]) -> RecogniserModel:
    """The recogniser EasyOCR's own rules pick for these languages (no weights touched)."""
    import easyocr
    from easyocr.config import recognition_models

    with tempfile.TemporaryDirectory(prefix="ocr-backend-probe-") as folder:
        probe = easyocr.Reader(
            list(languages),
            gpu=False,
            model_storage_directory=folder,
            user_network_directory=folder,
            detector=False,
            recognizer=False,
            download_enabled=False,
            verbose=False,
        )
    for generation, models in (("generation2", "gen2"), ("generation1", "gen1")):
        for name, model in recognition_models[models].items():
            if model["characters"] == probe.character:
                return RecogniserModel(name, model["filename"], probe.character, generation)
    raise ValueError(f"no EasyOCR recogniser writes the alphabet of {','.join(languages)}")


def missing_characters(text: str, alphabet: str) -> set[str]:
    """The characters of `text` the recogniser cannot write (whitespace other than space too)."""
    return {char for char in text if char not in alphabet}
