"""Shared fixtures: one real EasyOCR engine for the whole session (loading costs seconds)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ocr_backend.engine import OcrEngine  # noqa: E402
from ocr_backend.settings import Settings  # noqa: E402


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MODEL_DIR: the English weights must come from the bundled package."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def settings(model_dir: Path) -> Settings:
    return Settings(lang_list="en", model_dir=model_dir, device="cpu", model_download=False)


@pytest.fixture(scope="session")
def engine(settings: Settings):
    ocr = OcrEngine.load(settings)
    yield ocr
    ocr.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
