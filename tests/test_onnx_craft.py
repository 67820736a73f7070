"""DETECTOR_RUNTIME=onnx: the real CRAFT weights exported once, read the same as with torch."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from ocr_backend.errors import EngineError
from ocr_backend.ocr.lines import TextLine
from ocr_backend.ocr.local import LocalEngine
from ocr_backend.ocr.onnx_craft import (
    OnnxCraft,
    export_name,
    file_md5,
    load_onnx_craft,
    use_onnx_detector,
)
from ocr_backend.ocr.weights import locate_weights
from ocr_backend.settings import Settings, format_settings_error
from tests.support.drawing import draw_page


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-models")


@pytest.fixture(scope="session")
def onnx_engine(onnx_dir: Path):
    """Exports the detector once for the whole session."""
    ocr = LocalEngine.load(
        Settings(
            lang_list="en",
            model_dir=onnx_dir,
            device="cpu",
            model_download=False,
            detector_runtime="onnx",
        )
    )
    yield ocr
    ocr.close()


@pytest.fixture(scope="session")
def craft_weights(model_dir: Path) -> Path:
    return locate_weights(["en"], model_dir, download=False)["craft_mlt_25k.pth"]


@pytest.fixture(scope="session")
def torch_net(engine: LocalEngine) -> torch.nn.Module:
    return engine.reader.easyocr.detector


def exported_file(onnx_dir: Path, craft_weights: Path) -> Path:
    return onnx_dir / export_name(file_md5(craft_weights))


def slanted(image: Image.Image, degrees: float) -> Image.Image:
    return image.rotate(degrees, expand=True, fillcolor="white", resample=Image.Resampling.BICUBIC)


PAGES = {
    "one line": lambda: draw_page(["HELLO WORLD"])[0],
    "multi-line page": lambda: draw_page(
        [
            "Invoice 2024-117",
            "Customer: Jane Doe",
            "3 x Widgets at 4.50",
            "Total due 13.50 EUR",
            "Thank you for your order",
        ],
        font_size=32,
        gap=24,
    )[0],
    "slanted": lambda: slanted(draw_page(["SLANTED TEXT 42"], font_size=44)[0], 8),
    "small words": lambda: draw_page(["tiny print", "a b c"], font_size=16, gap=10)[0],
}


def same_boxes(a: TextLine, b: TextLine, tolerance: float = 1.0) -> bool:
    return all(
        abs(pa - pb) <= tolerance
        for corner_a, corner_b in zip(a.polygon, b.polygon, strict=True)
        for pa, pb in zip(corner_a, corner_b, strict=True)
    )


@pytest.mark.slow  # exports the detector to ONNX and loads a second engine
@pytest.mark.parametrize("page", list(PAGES))
async def test_onnx_engine_reads_the_same_texts_and_boxes_as_torch(
    page: str, engine: LocalEngine, onnx_engine: LocalEngine
):
    image = np.asarray(PAGES[page]())
    expected = await engine.read(image)
    got = await onnx_engine.read(image)
    assert expected, "the torch engine should read something on every test page"
    assert [line.text for line in got] == [line.text for line in expected]
    for line, want in zip(got, expected, strict=True):
        assert same_boxes(line, want), (line.polygon, want.polygon)
        assert line.score == pytest.approx(want.score, abs=1e-3)


@pytest.mark.slow  # exports the detector to ONNX and loads a second engine
def test_the_onnx_detector_replaces_torchs_only_in_the_onnx_engine(
    engine: LocalEngine, onnx_engine: LocalEngine
):
    assert isinstance(onnx_engine.reader.easyocr.detector, OnnxCraft)
    assert isinstance(engine.reader.easyocr.detector, torch.nn.Module)


@pytest.mark.slow  # exports the detector to ONNX and loads a second engine
def test_detector_outputs_match_torch_on_the_same_input(
    torch_net: torch.nn.Module, onnx_engine: LocalEngine
):
    from easyocr.imgproc import normalizeMeanVariance, resize_aspect_ratio

    page = np.asarray(PAGES["multi-line page"]())
    resized, _, _ = resize_aspect_ratio(page, 2560, interpolation=1, mag_ratio=1.0)
    x = torch.from_numpy(np.transpose(normalizeMeanVariance(resized), (2, 0, 1))[None])
    with torch.no_grad():
        want_y, want_feature = torch_net(x)
    y, feature = onnx_engine.reader.easyocr.detector(x)
    assert y.shape == want_y.shape and feature.shape == want_feature.shape
    assert float((y - want_y).abs().max()) < 1e-4
    assert float((feature - want_feature).abs().max()) < 1e-4


@pytest.mark.slow  # exports the detector to ONNX and loads a second engine
def test_the_exported_file_is_reused_on_the_next_load(
    onnx_engine: LocalEngine,
    onnx_dir: Path,
    craft_weights: Path,
    torch_net: torch.nn.Module,
    caplog: pytest.LogCaptureFixture,
):
    path = exported_file(onnx_dir, craft_weights)
    before = path.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="ocr_backend.ocr.onnx_craft"):
        _, loaded = load_onnx_craft(torch_net, craft_weights, onnx_dir, threads=1)
    assert loaded == path
    assert path.stat().st_mtime_ns == before
    assert "reusing" in caplog.text and "exporting" not in caplog.text


def test_the_file_name_is_keyed_by_weights_and_versions(craft_weights: Path):
    import onnx

    name = export_name(file_md5(craft_weights))
    assert name.startswith("craft-" + file_md5(craft_weights))
    assert torch.__version__.split("+")[0] in name and onnx.__version__ in name
    assert export_name("0" * 32) != name


@pytest.mark.slow  # exports the detector to ONNX and loads a second engine
@pytest.mark.parametrize("damage", ["truncated", "weights overwritten"])
def test_a_damaged_export_is_created_again(
    damage: str,
    onnx_engine: LocalEngine,
    onnx_dir: Path,
    craft_weights: Path,
    torch_net: torch.nn.Module,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
):
    good = exported_file(onnx_dir, craft_weights)
    path = tmp_path / good.name
    shutil.copyfile(good, path)
    size = path.stat().st_size
    with open(path, "r+b") as file:
        if damage == "truncated":
            file.truncate(size // 3)
        else:
            # ONNX Runtime still loads this; only comparing outputs finds it.
            file.seek(size // 2)
            file.write(b"\x7f" * 65536)
    with caplog.at_level(logging.INFO, logger="ocr_backend.ocr.onnx_craft"):
        craft, loaded = load_onnx_craft(torch_net, craft_weights, tmp_path, threads=1)
    assert "exporting it again" in caplog.text
    assert loaded == path and path.stat().st_size == size
    assert craft.check_against(torch_net) < 1e-4
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary file is left"


def test_an_unwritable_model_dir_stops_start_up_with_what_to_do(
    craft_weights: Path, torch_net: torch.nn.Module, tmp_path: Path
):
    # A file where the folder should be: unwritable even for root, unlike chmod.
    not_a_folder = tmp_path / "models"
    not_a_folder.write_text("")
    with pytest.raises(EngineError, match="MODEL_DIR=.*DETECTOR_RUNTIME=torch"):
        load_onnx_craft(torch_net, craft_weights, not_a_folder, threads=1)


def test_onnx_with_a_gpu_device_is_refused_by_the_settings(model_dir: Path):
    with pytest.raises(ValidationError) as caught:
        Settings(lang_list="en", model_dir=model_dir, device="cuda:0", detector_runtime="onnx")
    message = format_settings_error(caught.value)
    assert "\n" not in message
    assert "DETECTOR_RUNTIME=onnx" in message and "DEVICE=cpu" in message


def test_onnx_on_a_resolved_gpu_is_refused_by_the_engine(engine: LocalEngine, model_dir: Path):
    with pytest.raises(EngineError, match="DETECTOR_RUNTIME=onnx runs the detector on the CPU"):
        use_onnx_detector(engine.reader.easyocr, device="cuda:0", weights={}, model_dir=model_dir)


@pytest.mark.parametrize("value", ["tensorrt", "ONNX-CPU"])
def test_an_unknown_detector_runtime_is_refused(value: str, model_dir: Path):
    with pytest.raises(ValidationError) as caught:
        Settings(lang_list="en", model_dir=model_dir, detector_runtime=value)
    assert format_settings_error(caught.value) == (
        f"invalid DETECTOR_RUNTIME={value!r}: must be one of torch, onnx"
    )


def test_detector_runtime_defaults_to_torch_and_ignores_case(model_dir: Path):
    assert Settings(lang_list="en", model_dir=model_dir).detector_runtime == "torch"
    assert (
        Settings(lang_list="en", model_dir=model_dir, detector_runtime=" ONNX ").detector_runtime
        == "onnx"
    )
