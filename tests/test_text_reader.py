"""The reader seam: EasyOCR behind TextReader, and readers built with a project's recogniser."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ocr_backend.images.planes import as_planes
from ocr_backend.ocr.easyocr_reader import EasyOcrReader
from ocr_backend.ocr.reader import ReaderFactory
from ocr_backend.ocr.text_reader import read_page
from ocr_backend.settings import Settings
from tests.support.drawing import draw_page


@pytest.fixture(scope="module")
def factory(settings: Settings) -> ReaderFactory:
    return ReaderFactory(settings)


@pytest.fixture(scope="module")
def stock(factory: ReaderFactory) -> EasyOcrReader:
    return factory.build()


@pytest.fixture(scope="module")
def page() -> np.ndarray:
    image, _ = draw_page(["Recogniser 2024", "per project"], font_size=40)
    return as_planes(np.asarray(image))


def test_read_page_reads_as_readtext_reads_the_same_pixels(stock: EasyOcrReader, page):
    ours = [(line.text, line.score) for line in read_page(stock, page)]
    rgb, grey = np.ascontiguousarray(page[:, :, :3]), np.ascontiguousarray(page[:, :, 3])
    horizontal, free = stock.easyocr.detect(rgb, reformat=False)
    theirs = stock.easyocr.recognize(grey, horizontal[0], free[0], reformat=False)
    assert [text for text, _ in ours] == ["Recogniser 2024", "per project"]
    assert ours == [(str(text).strip(), pytest.approx(float(score))) for _, text, score in theirs]


def test_a_recogniser_file_given_is_the_one_that_reads(
    factory: ReaderFactory, stock: EasyOcrReader, settings: Settings, page, tmp_path: Path
):
    stock_file = factory.weights["english_g2.pth"]
    # A copy of the stock weights, under another name and folder: it reads what the stock reads.
    copy = tmp_path / "project-7.pth"
    shutil.copy(stock_file, copy)
    expected = [(line.text, line.score) for line in read_page(stock, page)]
    got = [(line.text, line.score) for line in read_page(factory.build(copy), page)]
    assert got == expected
    # Weights that differ read differently: the file given is really loaded, not the stock one.
    state = torch.load(stock_file, map_location="cpu", weights_only=False)
    last = [key for key in state if key.endswith("Prediction.bias")]
    assert last, sorted(state)[-5:]
    for key in last:
        state[key] = state[key].clone()
        state[key][1:] -= 50.0  # everything but the CTC blank becomes unlikely
    changed = tmp_path / "changed.pth"
    torch.save(state, changed)
    assert [line.text for line in read_page(factory.build(changed), page)] != [
        text for text, _ in expected
    ]
