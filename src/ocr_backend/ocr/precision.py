"""PRECISION: the number format the networks compute in, and where each one can run.

- `fp32`: EasyOCR exactly; nothing here touches the reader.
- `bf16` on the CPU: the CRAFT detector runs in bfloat16 with OpenVINO
  (openvino_craft.py). It pays only where the CPU has bf16 instructions
  (AMX or AVX-512 BF16): there it was about 2.5x faster end to end for 0.49%
  of characters changed. Elsewhere OpenVINO would quietly compute in fp32 and
  torch would emulate bf16, slower than fp32, so start-up stops instead.
  The recogniser stays fp32: in bf16 too it gained 2.85x instead of 2.5x but
  changed 0.82% of characters, over the 0.5% this mode promises.
- `bf16` / `fp16` on a GPU: torch's CUDA autocast around the detector and
  the recogniser (`Autocast`).

Results differ from fp32, so the model version says which precision read them
(`version_suffix`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EngineError

if TYPE_CHECKING:
    import easyocr
    import torch

    from ..settings import Settings

log = logging.getLogger(__name__)

CPUINFO = Path("/proc/cpuinfo")
# Either instruction set makes bfloat16 convolutions native: AMX tiles
# (Sapphire Rapids and later) or AVX-512 BF16 (Cooper Lake, Zen 4 and later).
BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (empty where /proc/cpuinfo is unreadable)."""
    try:
        text = CPUINFO.read_text(encoding="ascii", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_bf16_flags() -> frozenset[str]:
    """Which of the bf16 instruction sets this CPU has (none: bf16 would be emulated)."""
    return cpu_flags() & BF16_FLAGS


def check_precision(precision: str, device: str) -> None:
    """Stop start-up, in one line, where `precision` cannot run fast on `device` (EngineError)."""
    if precision == "fp32":
        return
    if device == "cpu":
        if precision == "fp16":
            raise EngineError(
                "PRECISION=fp16 runs on a GPU only and this reader runs on the CPU: set "
                "PRECISION=bf16 (a CPU with bf16 instructions) or PRECISION=fp32"
            )
        if not cpu_bf16_flags():
            raise EngineError(
                "PRECISION=bf16 needs a CPU with bf16 instructions (amx_bf16 or avx512_bf16 "
                "in /proc/cpuinfo) and this one has neither, so bf16 would be emulated and "
                "slower: set PRECISION=fp32, or DETECTOR_RUNTIME=onnx for a faster fp32 detector"
            )


def version_suffix(precision: str) -> str:
    """What the model version gains: nothing for fp32 (today's versions stay), else `-bf16`."""
    return "" if precision == "fp32" else f"-{precision}"


class Autocast:
    """A network run under torch autocast, with float32 outputs as EasyOCR expects.

    EasyOCR turns the networks' outputs into numpy arrays, and numpy has no
    bfloat16: the outputs are cast back. On a GPU this is `cuda` autocast;
    `device_type="cpu"` is the same code on the CPU (used by the tests and,
    for quality only, by bench/precision.py: CPU autocast without bf16
    instructions is emulated and slow).
    """

    def __init__(self, net: Callable[..., Any], device_type: str, dtype: torch.dtype) -> None:
        self.net = net
        self.device_type = device_type
        self.dtype = dtype

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.autocast(self.device_type, dtype=self.dtype):
            out = self.net(*args, **kwargs)
        return to_float32(out)

    def __getattr__(self, name: str) -> Any:
        # EasyOCR calls .eval() and the like on its networks; they reach the wrapped one.
        return getattr(self.net, name)


def to_float32(out: Any) -> Any:
    import torch

    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, tuple | list):
        return type(out)(to_float32(item) for item in out)
    return out


def autocast_reader(reader: easyocr.Reader, device_type: str, precision: str) -> None:
    """Run the reader's detector and recogniser under autocast in `precision`."""
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    reader.detector = Autocast(reader.detector, device_type, dtype)
    reader.recognizer = Autocast(reader.recognizer, device_type, dtype)


def apply_precision(
    reader: easyocr.Reader, settings: Settings, device: str, weights: dict[str, Path]
) -> None:
    """Set the reader up to compute in PRECISION (checked by `check_precision` already)."""
    if settings.precision == "fp32":
        return
    if device == "cpu":
        from .openvino_craft import use_openvino_detector

        use_openvino_detector(
            reader, weights=weights, model_dir=settings.model_dir, precision=settings.precision
        )
    else:
        autocast_reader(reader, "cuda", settings.precision)
        log.info("detector and recogniser under CUDA autocast, %s", settings.precision)
