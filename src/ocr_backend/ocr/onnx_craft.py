"""EasyOCR's CRAFT text detector run by ONNX Runtime, for a faster CPU path.

On the CPU the detector is nearly all of a `readtext` (about 8.7 s of 9 s on
a 1080x1349 photo), and ONNX Runtime runs the same network faster with the
same outputs. The network is exported once from the weights EasyOCR loaded
and kept in MODEL_DIR, so later starts only load the file. The file name
carries the weights' md5 and the exporter's versions: new weights or a new
torch never reuse a stale export.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

from ..errors import EngineError

if TYPE_CHECKING:
    import easyocr
    import torch

log = logging.getLogger(__name__)

OPSET = 17
INPUT = "image"
OUTPUTS = ("y", "feature")
# Traced with H != W so the exporter cannot confuse the two dynamic axes;
# EasyOCR pads its input to multiples of 32.
EXPORT_SHAPE = (1, 3, 96, 128)
# A cached file must give the loaded network's outputs on this input, or it
# is exported again: this catches a truncated, damaged or foreign file.
PROBE_SHAPE = (1, 3, 64, 96)
PROBE_TOLERANCE = 1e-4
# Whether ONNX Runtime's idle threads busy-wait for the next operator. Off:
# on 2 quiet cores a 1080x1349 photo took the same time either way (2.91 s
# off, 3.02 s on), and spinning threads burn CPU that the torch recognizer,
# other THREADS and other WORKERS need right after (bench/detector_runtime.py).
SPINNING = False
# What ONNX Runtime raises for a file it cannot load; they derive from Exception only.
ORT_LOAD_ERRORS: tuple[type[Exception], ...] = (
    ort_errors.Fail,
    ort_errors.InvalidArgument,
    ort_errors.InvalidGraph,
    ort_errors.InvalidProtobuf,
    ort_errors.NoSuchFile,
    ort_errors.NoModel,
    ort_errors.RuntimeException,
)


class CachedExportMismatch(Exception):
    """A cached ONNX file loads but does not compute what the weights compute."""


# A cached export that cannot be used as it is: exported again.
UNUSABLE_EXPORT: tuple[type[Exception], ...] = (*ORT_LOAD_ERRORS, CachedExportMismatch)


class OnnxCraft:
    """Stands in for EasyOCR's CRAFT module: same call, same outputs, run by ONNX Runtime.

    EasyOCR's `test_net` calls `y, feature = net(x)` on a float tensor of shape
    (N, 3, H, W) and reads `y` with `.cpu().data.numpy()`, so this takes and
    returns torch tensors.
    """

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session

    @classmethod
    def from_file(cls, path: Path, threads: int, *, spinning: bool = SPINNING) -> OnnxCraft:
        options = session_options(threads, spinning=spinning)
        return cls(ort.InferenceSession(str(path), options, ["CPUExecutionProvider"]))

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        image = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        y, feature = self.session.run(list(OUTPUTS), {INPUT: image})
        return torch.from_numpy(y), torch.from_numpy(feature)

    def check_against(self, net: torch.nn.Module) -> float:
        """Largest output difference from `net` on a fixed input; raises if over tolerance."""
        import torch

        probe = torch.from_numpy(np.random.default_rng(0).random(PROBE_SHAPE, dtype=np.float32))
        with torch.no_grad():
            expected = net(probe)
        got = self(probe)
        error = max(float((e - g).abs().max()) for e, g in zip(expected, got, strict=True))
        if not error <= PROBE_TOLERANCE:  # also catches NaN
            raise CachedExportMismatch(f"outputs differ from the weights' by {error:.2g}")
        return error


def session_options(threads: int, *, spinning: bool = SPINNING) -> ort.SessionOptions:
    """One pool of `threads` for the convolutions; no second pool to fight it for the cores."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return options


def export_name(weights_md5: str) -> str:
    """The cache file's name: what was exported, and by which versions."""
    import onnx
    import torch

    def clean(version: str) -> str:
        return re.sub(r"[^A-Za-z0-9.]", "_", version)

    return (
        f"craft-{weights_md5}-torch{clean(torch.__version__)}"
        f"-onnx{clean(onnx.__version__)}-opset{OPSET}.onnx"
    )


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def export_craft(net: torch.nn.Module, path: Path) -> None:
    """Export `net` to `path` with dynamic batch, height and width.

    Written to a temporary file beside `path` and renamed: a crash, or another
    worker exporting at the same time, never leaves half a file under the
    final name.
    """
    import torch

    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    temp = Path(temp_name)
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter is deprecated but exact for this
            # network, and needs neither onnxscript nor torch.export's shape guards.
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                net,
                (torch.zeros(EXPORT_SHAPE),),
                str(temp),
                input_names=[INPUT],
                output_names=list(OUTPUTS),
                dynamic_axes={
                    INPUT: {0: "batch", 2: "height", 3: "width"},
                    "y": {0: "batch", 1: "height_2", 2: "width_2"},
                    "feature": {0: "batch", 2: "height_2", 3: "width_2"},
                },
                opset_version=OPSET,
                dynamo=False,
            )
        with open(temp, "rb") as file:
            os.fsync(file.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def load_onnx_craft(
    net: torch.nn.Module,
    weights: Path,
    model_dir: Path,
    threads: int,
    *,
    setting: str = "DETECTOR_RUNTIME=onnx",
    instead: str = "DETECTOR_RUNTIME=torch",
) -> tuple[OnnxCraft, Path]:
    """The ONNX detector for these weights: the cached export if it is sound, else a new one.

    `setting` asked for the export (PRECISION=bf16 reuses it), `instead` needs none: for
    the error message.
    """
    path = model_dir / export_name(file_md5(weights))
    if path.is_file():
        try:
            craft = OnnxCraft.from_file(path, threads)
            craft.check_against(net)
        except UNUSABLE_EXPORT as exc:
            log.warning("ONNX detector %s is unusable (%s): exporting it again", path, exc)
        else:
            log.info("ONNX detector: reusing %s", path)
            return craft, path
    log.info("ONNX detector: exporting %s to %s", weights.name, path)
    try:
        export_craft(net, path)
    except OSError as exc:
        raise EngineError(
            f"{setting} cannot write the exported detector into "
            f"MODEL_DIR={model_dir} ({exc.strerror or exc}): make MODEL_DIR writable, "
            f"or set {instead}"
        ) from None
    craft = OnnxCraft.from_file(path, threads)
    craft.check_against(net)  # a fresh export that differs is a bug: let it raise
    return craft, path


def use_onnx_detector(
    reader: easyocr.Reader, *, device: str, weights: dict[str, Path], model_dir: Path
) -> None:
    """Replace the reader's CRAFT module by its ONNX Runtime twin (CPU only)."""
    import torch
    from easyocr.config import detection_models

    if device != "cpu":
        raise EngineError(
            f"DETECTOR_RUNTIME=onnx runs the detector on the CPU, but the device is {device}: "
            "set DEVICE=cpu, or DETECTOR_RUNTIME=torch to use the GPU"
        )
    craft_weights = weights[detection_models["craft"]["filename"]]
    # torch's count was set for THREADS readers sharing the cores; ONNX Runtime
    # takes over the same share for detection, which torch then no longer runs.
    threads = torch.get_num_threads()
    reader.detector, path = load_onnx_craft(reader.detector, craft_weights, model_dir, threads)
    log.info("ONNX detector %s in use, %d intra-op thread(s)", path.name, threads)
