"""EasyOCR's CRAFT text detector run by OpenVINO in bfloat16, for PRECISION=bf16 on a CPU.

Detection is most of a CPU `readtext` (an A4 page: 16 s of 22 s; a photo:
3 s of 3.1 s). On a CPU with bf16 instructions (AMX or AVX-512 BF16)
OpenVINO runs CRAFT in bfloat16 about 2.5x faster end to end (3.2x on a
1080x1349 photo) for 0.49% of characters changed, measured on 8 real photos
on such a machine (issue 25). torch's own CPU autocast gave only ~1.3x.

The network is the ONNX file DETECTOR_RUNTIME=onnx exports (onnx_craft.py):
one export per weights md5 and torch version in MODEL_DIR. OpenVINO compiles
it once and keeps the compiled blob in its own cache folder in MODEL_DIR (its
CACHE_DIR property): the blob's key covers the network, the compile settings
and OpenVINO's version, so later starts only load it.

Only `Core.compile_model` is used: OpenVINO's model converter (`ovc`,
`convert_model`) sends usage telemetry unless opted out, the runtime does not.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import EngineError

if TYPE_CHECKING:
    import easyocr
    import openvino
    import torch

log = logging.getLogger(__name__)

DEVICE = "CPU"
INPUT = "image"


def cache_dir(model_dir: Path) -> Path:
    """Where OpenVINO keeps compiled detectors: one folder per OpenVINO version."""
    import openvino

    version = re.sub(r"[^A-Za-z0-9.]", "_", openvino.__version__.split("-")[0])
    return model_dir / f"openvino-{version}"


def compile_config(threads: int, precision: str) -> dict[str, Any]:
    """The CPU plugin's settings: `threads` cores, one stream, the given inference precision.

    One stream at LATENCY: a reader runs one image at a time, and THREADS
    readers already share the cores (each gets cpu_count // THREADS). No
    pinning: other readers' threads and the torch recogniser use the same cores.
    """
    return {
        "INFERENCE_PRECISION_HINT": precision,
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": "1",
        "INFERENCE_NUM_THREADS": str(threads),
        "ENABLE_CPU_PINNING": "NO",
    }


class OpenVinoCraft:
    """Stands in for EasyOCR's CRAFT module: same call, same outputs, run by OpenVINO.

    EasyOCR's `test_net` calls `y, feature = net(x)` on a float tensor of shape
    (N, 3, H, W) and reads `y` with `.cpu().data.numpy()`; the outputs are
    float32 whatever precision OpenVINO computed in.
    """

    def __init__(self, compiled: openvino.CompiledModel) -> None:
        self.compiled = compiled
        # One reader is used from one thread at a time: one request, reused.
        self.request = compiled.create_infer_request()

    @property
    def precision(self) -> str:
        """What OpenVINO really computes in (`bf16`, or `f32` where the CPU lacks bf16)."""
        kind = self.compiled.get_property("INFERENCE_PRECISION_HINT")  # an openvino.Type
        return str(kind.to_string() if hasattr(kind, "to_string") else kind)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        image = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        self.request.infer({0: image})
        y = self.request.get_output_tensor(0).data
        feature = self.request.get_output_tensor(1).data
        # Copies: the request reuses its output buffers on the next call.
        return (
            torch.from_numpy(np.array(y, dtype=np.float32)),
            torch.from_numpy(np.array(feature, dtype=np.float32)),
        )


def compile_craft(onnx_path: Path, model_dir: Path, threads: int, precision: str) -> OpenVinoCraft:
    """Compile the exported detector (or load its compiled blob from the cache)."""
    import openvino

    folder = cache_dir(model_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EngineError(
            f"PRECISION=bf16 cannot write the compiled detector into MODEL_DIR={model_dir} "
            f"({exc.strerror or exc}): make MODEL_DIR writable, or set PRECISION=fp32"
        ) from None
    core = openvino.Core()
    core.set_property({"CACHE_DIR": str(folder)})
    compiled = core.compile_model(str(onnx_path), DEVICE, compile_config(threads, precision))
    return OpenVinoCraft(compiled)


def use_openvino_detector(
    reader: easyocr.Reader, *, weights: dict[str, Path], model_dir: Path, precision: str = "bf16"
) -> OpenVinoCraft:
    """Replace the reader's CRAFT module by its OpenVINO twin computing in `precision`."""
    import torch
    from easyocr.config import detection_models

    from .onnx_craft import load_onnx_craft

    craft_weights = weights[detection_models["craft"]["filename"]]
    # The ONNX export DETECTOR_RUNTIME=onnx makes and checks, reused as OpenVINO's input.
    _, onnx_path = load_onnx_craft(
        reader.detector,
        craft_weights,
        model_dir,
        1,
        setting="PRECISION=bf16",
        instead="PRECISION=fp32",
    )
    # torch's count was set for THREADS readers sharing the cores; OpenVINO takes
    # over the same share for detection, which torch then no longer runs.
    threads = torch.get_num_threads()
    craft = compile_craft(onnx_path, model_dir, threads, precision)
    reader.detector = craft
    log.info(
        "OpenVINO detector %s in use: %s, %d thread(s)", onnx_path.name, craft.precision, threads
    )
    return craft
