"""PRECISION=bf16 against bare EasyOCR `readtext` (fp32), side by side in one run, on the CPU.

Per image and overall: seconds for each, the speed ratio, and the share of
characters changed (edit distance over all texts against fp32's). Then the
peak memory (RSS) of a process reading in each precision, and start-up with
a cold and a warm MODEL_DIR cache.

Where the CPU has no bf16 instructions (no amx_bf16 or avx512_bf16 in
/proc/cpuinfo) the service refuses PRECISION=bf16, and so bf16's speed cannot
be measured. The benchmark says so and measures instead:

- the same OpenVINO detector path, accepted by faking the CPU flags, where
  OpenVINO computes in f32: its speed is the runtime's, not bf16's;
- the characters bf16 numerics change, with torch CPU autocast bf16 around
  the detector as a stand-in: for quality only, never for speed (without
  bf16 instructions it is emulated and slow).

    python -m bench.precision [--rounds 1] [--no-300dpi] [--only NAME] [--part speed|memory|all]

Run it from the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.detector_runtime import photo
from bench.pages import document
from ocr_backend.ocr import precision
from ocr_backend.ocr.openvino_craft import OpenVinoCraft
from ocr_backend.ocr.weights import bundled_model_dir
from ocr_backend.settings import Settings
from tests.support.photos import DIAGRAM, SCREENSHOT, STREET_SIGNS

ROOT = Path(__file__).resolve().parents[1]
HAS_BF16 = bool(precision.cpu_bf16_flags())
A4_INCHES = (8.27, 11.69)


def images(with_300dpi: bool) -> dict[str, np.ndarray]:
    """The real photos in tests/images, photos made here, and A4 pages at 150 and 300 DPI."""
    found = {
        path.name: np.asarray(Image.open(path).convert("RGB"))
        for path in (STREET_SIGNS, DIAGRAM, SCREENSHOT)
    }
    found["poster photo 1080x1349"] = np.asarray(photo())
    found["letter photo 1080x1349"] = np.asarray(document())
    found["receipt 600x900"] = np.asarray(document(600, 900, lines=18, seed=2))
    for dpi in (150, 300) if with_300dpi else (150,):
        size = (round(A4_INCHES[0] * dpi), round(A4_INCHES[1] * dpi))
        found[f"A4 page {dpi} DPI"] = np.asarray(document(*size, lines=30, seed=dpi))
    return found


def edits(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions) between two texts."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def all_text(found: list[Any]) -> str:
    """Every text `readtext` found, one line each, in its order."""
    return "\n".join(text for _, text, _ in found)


@contextmanager
def cpu_said_to_have_bf16() -> Iterator[None]:
    """Let the bf16 path load on a CPU without bf16 (OpenVINO then computes in f32)."""
    real = precision.cpu_flags
    precision.cpu_flags = lambda: real() | {"amx_bf16"}
    try:
        yield
    finally:
        precision.cpu_flags = real


def bare_reader() -> Any:
    """EasyOCR as a user runs it: fp32, the bundled English weights."""
    import easyocr

    return easyocr.Reader(
        ["en"],
        gpu=False,
        model_storage_directory=str(bundled_model_dir()),
        download_enabled=False,
        verbose=False,
    )


def bf16_reader(model_dir: Path) -> Any:
    """The service's reader with PRECISION=bf16 (faked CPU flags where the CPU has no bf16)."""
    from ocr_backend.ocr.reader import ReaderFactory

    settings = Settings(
        lang_list="en", model_dir=model_dir, device="cpu", model_download=False, precision="bf16"
    )
    if HAS_BF16:
        return ReaderFactory(settings).build().easyocr
    with cpu_said_to_have_bf16():
        return ReaderFactory(settings).build().easyocr


def timed(run: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds, this process's CPU seconds (steadier on a shared machine), the result."""
    started, cpu = time.perf_counter(), time.process_time()
    out = run()
    return time.perf_counter() - started, time.process_time() - cpu, out


@dataclass
class Totals:
    fp32_s: float = 0.0
    bf16_s: float = 0.0
    fp32_cpu: float = 0.0
    bf16_cpu: float = 0.0
    chars: int = 0
    changed: int = 0
    stand_in_changed: int = 0
    rows: list[str] = field(default_factory=list)


def speed(rounds: int, with_300dpi: bool, model_dir: Path, only: list[str]) -> None:
    import torch

    fp32 = bare_reader()
    bf16 = bf16_reader(model_dir)
    computes = bf16.detector.precision if isinstance(bf16.detector, OpenVinoCraft) else "?"
    stand_in = bare_reader() if not HAS_BF16 else None
    if stand_in is not None:
        stand_in.detector = precision.Autocast(stand_in.detector, "cpu", torch.bfloat16)
    label = "bf16" if HAS_BF16 and computes == "bf16" else f"OpenVINO {computes}"
    print(
        f"\n{os.cpu_count()} cores, torch threads {torch.get_num_threads()}; "
        f"PRECISION=bf16's detector computes in: {computes}"
    )
    header = f"{'image':26s} {'size':>10s} {'fp32 s':>8s} {label + ' s':>14s} {'ratio':>6s}"
    header += f" {'cpu ratio':>8s}"
    header += f" {'chars changed':>14s}"
    if stand_in is not None:
        header += f" {'bf16 stand-in: chars changed':>29s}"
    print(header)
    totals = Totals()
    chosen = {
        name: image
        for name, image in images(with_300dpi).items()
        if not only or any(part in name for part in only)
    }
    for name, image in chosen.items():
        # Alternating fp32, bf16, fp32, bf16 ...: a neighbour's load hits both alike.
        fp32_times, bf16_times, fp32_cpu, bf16_cpu = [], [], [], []
        for _ in range(rounds):
            took, cpu, want = timed(lambda im=image: fp32.readtext(im))
            fp32_times.append(took)
            fp32_cpu.append(cpu)
            took, cpu, got = timed(lambda im=image: bf16.readtext(im))
            bf16_times.append(took)
            bf16_cpu.append(cpu)
        a, b = statistics.median(fp32_times), statistics.median(bf16_times)
        a_cpu, b_cpu = statistics.median(fp32_cpu), statistics.median(bf16_cpu)
        totals.fp32_cpu += a_cpu
        totals.bf16_cpu += b_cpu
        reference = all_text(want)
        changed = edits(reference, all_text(got))
        row = (
            f"{name:26s} {image.shape[1]:>4d}x{image.shape[0]:<5d} {a:8.2f} {b:14.2f} "
            f"{a / b:5.2f}x {a_cpu / b_cpu:7.2f}x {100 * changed / max(1, len(reference)):13.2f}%"
        )
        totals.fp32_s += a
        totals.bf16_s += b
        totals.chars += len(reference)
        totals.changed += changed
        if stand_in is not None:
            emulated = edits(reference, all_text(stand_in.readtext(image)))
            totals.stand_in_changed += emulated
            row += f" {100 * emulated / max(1, len(reference)):28.2f}%"
        print(row, flush=True)
    row = (
        f"{'overall':26s} {'':10s} {totals.fp32_s:8.2f} {totals.bf16_s:14.2f} "
        f"{totals.fp32_s / totals.bf16_s:5.2f}x {totals.fp32_cpu / totals.bf16_cpu:7.2f}x "
        f"{100 * totals.changed / totals.chars:13.2f}%"
    )
    if stand_in is not None:
        row += f" {100 * totals.stand_in_changed / totals.chars:28.2f}%"
    print(row)
    print(
        f"({totals.chars} characters read by fp32 in all; ratio: wall seconds, cpu ratio: "
        "this process's CPU seconds, steadier when other work shares the cores)"
    )
    if not HAS_BF16:
        print(
            f"\nThis CPU has no bf16 instructions: '{label}' is the OpenVINO runtime computing "
            "in f32, NOT bf16's speed,\nand its characters changed are f32-against-f32. The "
            "stand-in column is torch CPU autocast bf16 around\nthe detector: bf16 numerics, "
            "for quality only (emulated here, so not timed)."
        )


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(mode: str, model_dir: Path) -> None:
    """One reader in `mode` loaded and reading an A4 page at 150 DPI; prints JSON figures."""
    started = time.perf_counter()
    reader = bare_reader() if mode == "fp32" else bf16_reader(model_dir)
    loaded = time.perf_counter() - started
    reader.readtext(images(False)["A4 page 150 DPI"])
    print(json.dumps({"load_s": loaded, "peak_rss_mib": peak_rss_mib()}))


def run_child(mode: str, model_dir: Path) -> dict[str, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bench.precision", "--child", mode, "--model-dir", str(model_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"the {mode} child failed:\n{done.stderr}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["process_s"] = time.perf_counter() - started
    return figures


def memory_and_startup(model_dir: Path) -> None:
    name = "bf16" if HAS_BF16 else "bf16 path (OpenVINO f32 here)"
    cold = Path(tempfile.mkdtemp(prefix="bench-precision-cold-"))
    print(f"\n{'process':36s} {'reader load s':>14s} {'whole run s':>12s} {'peak RSS MiB':>13s}")
    for label, mode, folder in (
        ("fp32", "fp32", model_dir),
        (f"{name}, cold cache", "bf16", cold),
        (f"{name}, warm cache", "bf16", cold),
    ):
        got = run_child(mode, folder)
        print(
            f"{label:36s} {got['load_s']:14.1f} {got['process_s']:12.1f} "
            f"{got['peak_rss_mib']:13.0f}",
            flush=True,
        )
    print("(each a fresh process that loads one reader and reads one A4 page at 150 DPI)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="timed runs per side and image")
    parser.add_argument("--no-300dpi", action="store_true", help="leave out the 300 DPI page")
    parser.add_argument("--part", choices=["speed", "memory", "all"], default="all")
    parser.add_argument("--model-dir", type=Path, help="MODEL_DIR (default: temporary)")
    parser.add_argument(
        "--only", action="append", default=[], help="read only images whose name has this"
    )
    parser.add_argument("--child", choices=["fp32", "bf16"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    model_dir = args.model_dir or Path(tempfile.mkdtemp(prefix="bench-precision-"))
    if args.child:
        child(args.child, model_dir)
        return
    flags = sorted(precision.cpu_bf16_flags())
    print(
        f"CPU bf16 instructions: {', '.join(flags)}"
        if flags
        else "CPU bf16 instructions: NONE (no amx_bf16 or avx512_bf16 in /proc/cpuinfo): the "
        "service refuses PRECISION=bf16 here, and bf16's speed cannot be measured"
    )
    if args.part in ("speed", "all"):
        speed(args.rounds, not args.no_300dpi, model_dir, args.only)
    if args.part in ("memory", "all"):
        memory_and_startup(model_dir)


if __name__ == "__main__":
    main()
