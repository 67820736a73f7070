"""The real EasyOCR engine, with the bundled English weights, on images drawn here."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ocr_backend.errors import DeviceUnavailable, WeightsMissing
from ocr_backend.ocr.lines import TextLine
from ocr_backend.ocr.local import RECOGNISERS_PER_THREAD, LocalEngine
from ocr_backend.ocr.reader import resolve_device
from ocr_backend.ocr.text_reader import Detected
from ocr_backend.ocr.weights import locate_weights
from ocr_backend.predictor import model_version
from ocr_backend.settings import Settings
from tests.support.drawing import draw_page

try:
    import torch

    HAS_CUDA = torch.cuda.is_available()
except ImportError:  # pragma: no cover - torch is a dependency
    HAS_CUDA = False


def contains(box: tuple, point: tuple[float, float]) -> bool:
    xs = [x for x, _ in box]
    ys = [y for _, y in box]
    return min(xs) <= point[0] <= max(xs) and min(ys) <= point[1] <= max(ys)


async def test_engine_reads_the_drawn_words_where_they_are(engine: LocalEngine):
    image, drawn = draw_page(["HELLO WORLD", "Invoice 2024"])
    lines = await engine.read(np.asarray(image))
    assert [line.text for line in lines] == ["HELLO WORLD", "Invoice 2024"]
    for line, expected in zip(lines, drawn, strict=True):
        assert contains(line.polygon, expected.centre)
        assert 0.5 < line.score <= 1.0


async def test_text_lines_are_plain_python_values(engine: LocalEngine):
    image, _ = draw_page(["PLAIN"])
    (line,) = await engine.read(np.asarray(image))
    assert isinstance(line, TextLine)
    assert type(line.score) is float and type(line.text) is str
    assert len(line.polygon) == 4
    assert all(type(c) is float for point in line.polygon for c in point)


async def test_a_blank_image_has_no_lines(engine: LocalEngine):
    blank = np.full((200, 300, 3), 255, dtype=np.uint8)
    assert await engine.read(blank) == []


async def test_reads_run_in_the_pool_and_leave_the_event_loop_free(engine: LocalEngine):
    image, _ = draw_page(["BUSY ENGINE"] * 6, font_size=48)
    reading = asyncio.ensure_future(engine.read(np.asarray(image)))
    started = time.perf_counter()
    ticks = 0
    while not reading.done():
        await asyncio.sleep(0.01)
        ticks += 1
    elapsed = time.perf_counter() - started
    assert (await reading)[0].text == "BUSY ENGINE"
    # The loop woke up about every 10 ms while OCR ran: it was never blocked.
    assert ticks >= elapsed / 0.05


def test_english_weights_come_from_the_bundled_package(model_dir: Path):
    found = locate_weights(["en"], model_dir, download=False)
    assert set(found) == {"craft_mlt_25k.pth", "english_g2.pth"}
    assert all("easyocr_en_models" in str(path) for path in found.values())


def test_weights_in_model_dir_come_first(tmp_path: Path, model_dir: Path):
    bundled = locate_weights(["en"], model_dir, download=False)
    (tmp_path / "english_g2.pth").symlink_to(bundled["english_g2.pth"])
    found = locate_weights(["en"], tmp_path, download=False)
    assert found["english_g2.pth"] == tmp_path / "english_g2.pth"
    assert found["craft_mlt_25k.pth"] == bundled["craft_mlt_25k.pth"]


def test_missing_weights_name_file_language_and_both_fixes(tmp_path: Path):
    with pytest.raises(WeightsMissing) as caught:
        locate_weights(["mn", "en"], tmp_path, download=False)
    message = str(caught.value)
    assert "cyrillic_g2.pth" in message
    assert "languages mn, en" in message
    assert f"place cyrillic_g2.pth in {tmp_path}" in message
    assert "set LANG_LIST=en" in message


@pytest.mark.slow  # starts the command
def test_default_languages_offline_stop_the_command_in_seconds(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k not in ("LANG_LIST", "DEVICE")}
    env.update(MODEL_DIR=str(tmp_path), MODEL_DOWNLOAD="false", PORT="1")
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "ocr_backend"], env=env, capture_output=True, text=True, timeout=60
    )
    took = time.perf_counter() - started
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "ocr-backend: EasyOCR weights cyrillic_g2.pth (needed for languages mn, en)"
    )
    assert "set LANG_LIST=en" in last
    assert "Traceback" not in result.stderr
    assert took < 20


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA; the no-GPU refusal cannot be shown")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_an_explicit_gpu_without_cuda_is_refused_not_replaced_by_the_cpu(device: str):
    with pytest.raises(DeviceUnavailable, match=f"DEVICE={device} but CUDA is not available"):
        resolve_device(device)


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
def test_unset_device_takes_the_cpu_without_cuda():
    assert resolve_device(None) == "cpu"


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU; CI has none")
def test_unset_device_takes_the_first_gpu_and_reads_on_it(model_dir: Path):
    assert resolve_device(None) == "cuda:0"
    gpu = LocalEngine.load(Settings(lang_list="en", model_dir=model_dir, model_download=False))
    try:
        image, _ = draw_page(["GPU TEXT"])
        lines = asyncio.run(gpu.read(np.asarray(image)))
        assert [line.text for line in lines] == ["GPU TEXT"]
    finally:
        gpu.close()


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU; CI has none")
def test_a_gpu_index_past_the_last_is_refused():
    with pytest.raises(DeviceUnavailable, match="use one of cuda:0"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_every_ocr_thread_reads_with_the_reader_it_built_itself():
    # A reader is only fast in the thread that built it (the quantized recognizer
    # ran 5x slower elsewhere), so each OCR thread builds its own at start-up.
    built: dict[int, object] = {}

    def build(recogniser: Path | None = None) -> Any:
        reader = object()  # stands in for a TextReader: this is about threads
        built[threading.get_ident()] = reader
        return reader

    engine = LocalEngine(build, languages=["en"], device="cpu", threads=3)
    try:
        assert len(built) == 3  # all built before the engine is handed out
        together = threading.Barrier(3)

        def reader_here():
            together.wait(timeout=10)
            return threading.get_ident(), engine.reader

        for ident, reader in [
            f.result() for f in [engine._pool.submit(reader_here) for _ in range(3)]
        ]:
            assert built[ident] is reader
    finally:
        engine.close()


def test_a_reader_that_cannot_be_built_stops_the_engine_instead_of_hanging():
    def build(recogniser: Path | None = None) -> Any:
        raise WeightsMissing("no weights")

    with pytest.raises(WeightsMissing, match="no weights"):
        LocalEngine(build, languages=["en"], device="cpu", threads=2)


class NamedReader:
    """Stands in for a TextReader (this is about which reader reads, not about OCR):
    it reads its recogniser's name, and says which thread built it."""

    def __init__(self, recogniser: Path | None) -> None:
        self.name = recogniser.name if recogniser else "stock"
        self.thread = threading.get_ident()

    def detect(self, planes: np.ndarray, scale: float = 1.0) -> Detected:
        return Detected(horizontal=[[0, 1, 0, 1]], free=[])

    def recognise(self, planes: np.ndarray, found: Detected) -> list[TextLine]:
        assert threading.get_ident() == self.thread  # read where it was built
        corners = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
        return [TextLine(corners, self.name, 1.0)]


async def test_a_project_recogniser_reads_with_its_own_reader_and_few_are_kept():
    built: list[str] = []

    def build(recogniser: Path | None = None) -> NamedReader:
        reader = NamedReader(recogniser)
        built.append(reader.name)
        return reader

    engine = LocalEngine(build, languages=["en"], device="cpu", threads=1)
    page = np.full((20, 20, 3), 255, dtype=np.uint8)
    try:
        read = [
            (await engine.read(page, recogniser))[0].text
            for recogniser in (None, Path("a.pth"), Path("b.pth"), None, Path("a.pth"))
        ]
        assert read == ["stock", "a.pth", "b.pth", "stock", "a.pth"]
        assert built == ["stock", "a.pth", "b.pth"]  # each built once, in its thread
        # Past RECOGNISERS_PER_THREAD (2), the one least recently read with is let go:
        # c lets b go (a was read last), b then lets a go, and a comes back.
        assert RECOGNISERS_PER_THREAD == 2
        for name in ("c.pth", "b.pth", "a.pth"):
            assert (await engine.read(page, Path(name)))[0].text == name
        assert built == ["stock", "a.pth", "b.pth", "c.pth", "b.pth", "a.pth"]
        assert (await engine.read(page))[0].text == "stock"  # the stock reader is never let go
    finally:
        engine.close()


def test_the_model_version_is_the_one_label_studio_already_stores(settings: Settings, engine):
    """Label Studio asks again for tasks whose predictions carry another model_version:
    asking the engine for the library's name and version must not change it."""
    import easyocr

    assert (engine.name, engine.version) == ("EasyOCR", easyocr.__version__)
    assert model_version(settings, engine) == "easyocr-1.7.2-en-4cbfbf46"
