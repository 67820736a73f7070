"""Bare EasyOCR (torch detector) against the engine with DETECTOR_RUNTIME=onnx, on the CPU.

Prints seconds per image for each, the speed-up, and whether both read the
same texts and boxes. Runs alternate (A B A B ...) so that a neighbour's load
on a shared machine hits both sides alike; medians are reported.

Then tries torch's and ONNX Runtime's thread counts, and THREADS=1 against
THREADS=2 for throughput, to choose settings that do not fight over the cores.

    python -m bench.detector_runtime [--rounds 3] [--part compare|threads|pool]

Run it from the repository root.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from ocr_backend.images.planes import as_planes
from ocr_backend.ocr.easyocr_reader import EasyOcrReader
from ocr_backend.ocr.lines import TextLine
from ocr_backend.ocr.onnx_craft import OnnxCraft, export_name, file_md5
from ocr_backend.ocr.reader import ReaderFactory
from ocr_backend.ocr.text_reader import read_page
from ocr_backend.ocr.weights import bundled_model_dir
from ocr_backend.settings import Settings
from tests.support.drawing import draw_page, font

if TYPE_CHECKING:
    import easyocr

PARAGRAPH = (
    "The quarterly report shows revenue of 4,218,300 EUR, up 12.4% on the year. "
    "Operating costs fell to 2,905,100 EUR after the move of the Leeds warehouse. "
    "Orders placed before 30 June ship from the new site; invoices keep their numbers. "
    "Questions about accounts go to finance@example.com or +44 113 496 0000, ext. 217. "
    "Staff training resumes on 4 September in rooms B2 and B3 from 9:30 to 12:00."
)


def wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line]


def photo() -> Image.Image:
    """A 1080x1349 phone photo of a poster: a scene with a few lines of text.

    Like the photo of issue 9: the detector scans a large image, the
    recognizer reads only a few lines.
    """
    rows = np.linspace(0.0, 1.0, 1349)[:, None, None]
    cols = np.linspace(0.0, 1.0, 1080)[None, :, None]
    sky = (90 + 120 * rows + 30 * cols) * np.array([0.55, 0.75, 1.0])
    noise = np.random.default_rng(7).normal(0, 6, (1349, 1080, 3))
    image = Image.fromarray(np.clip(sky + noise, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((700, 80, 980, 360), fill=(235, 200, 90))
    draw.polygon([(0, 1100), (300, 820), (620, 1349), (0, 1349)], fill=(60, 90, 50))
    draw.polygon([(380, 1349), (820, 760), (1080, 1000), (1080, 1349)], fill=(80, 110, 60))
    draw.rectangle((120, 420, 900, 900), fill=(245, 242, 230), outline=(40, 40, 40), width=6)
    lines = [("SUMMER MARKET", 64, 460), ("Saturday 14 June", 44, 580), ("9:00 - 16:00", 44, 660)]
    lines.append(("Old Town Square, Stall 27", 36, 760))
    for text, size, top in lines:
        draw.text((160, top), text, font=font(size), fill=(30, 30, 30))
    return image


def images() -> dict[str, np.ndarray]:
    """Two 1080x1349 images (a phone photo's size): a poster photo and a page dense with
    text; and two small ones."""
    page, _ = draw_page(
        ["ANNUAL REPORT 2024", "", *wrap(PARAGRAPH, 62)],
        size=(1080, 1349),
        font_size=26,
        gap=14,
        margin=40,
    )
    receipt, _ = draw_page(
        ["CORNER SHOP", "2 x Milk 1.80", "1 x Bread 2.45", "TOTAL 4.25", "Card **** 1234"],
        size=(480, 400),
        font_size=28,
        gap=16,
    )
    label, _ = draw_page(["PARCEL 7731-AX"], font_size=36)
    slanted = label.rotate(6, expand=True, fillcolor="white", resample=Image.Resampling.BICUBIC)
    return {
        "photo 1080x1349": np.asarray(photo()),
        "page 1080x1349": np.asarray(page),
        "receipt 480x400": np.asarray(receipt),
        "label (slanted)": np.asarray(slanted),
    }


@dataclass(frozen=True)
class Took:
    wall: float
    cpu: float  # of the whole process, all threads: what the run cost the machine


def timed(run: Callable[[], object]) -> Took:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return Took(time.perf_counter() - wall, time.process_time() - cpu)


def alternate(runs: dict[str, Callable[[], object]], rounds: int) -> dict[str, Took]:
    """Median times of each run, taken in turn A B C A B C ... after one warm-up each."""
    for run in runs.values():
        run()
    took: dict[str, list[Took]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            took[name].append(timed(run))
    return {
        name: Took(statistics.median(t.wall for t in ts), statistics.median(t.cpu for t in ts))
        for name, ts in took.items()
    }


def same_reading(a: list, b: list) -> str:
    """'same' when texts match and every corner is within 1 px, else what differs."""
    if [t for _, t, _ in a] != [t for _, t, _ in b]:
        return f"DIFFERENT TEXTS {[t for _, t, _ in a]} vs {[t for _, t, _ in b]}"
    worst = max(
        (
            float(np.abs(np.asarray(x, float) - np.asarray(y, float)).max())
            for (x, _, _), (y, _, _) in zip(a, b, strict=True)
        ),
        default=0.0,
    )
    return "same" if worst <= 1.0 else f"boxes differ by up to {worst:.1f} px"


def read(engine: EasyOcrReader, image: np.ndarray) -> list[TextLine]:
    """A page as the service's engine reads it."""
    return read_page(engine, as_planes(image))


def compare(reader: easyocr.Reader, engine: EasyOcrReader, rounds: int) -> None:
    """Bare EasyOCR against the ONNX engine as the service runs it (THREADS=1)."""
    import torch

    threads = torch.get_num_threads()
    print(
        f"\n{os.cpu_count()} cores; THREADS=1; torch threads {threads}; "
        f"ONNX Runtime intra-op threads {threads}"
    )
    print(f"{'image':18s} {'easyocr (torch)':>16s} {'engine (onnx)':>14s} {'speed-up':>9s}  result")
    for name, image in images().items():
        bare = reader.readtext(image)
        ours = [([list(p) for p in t.polygon], t.text, t.score) for t in read(engine, image)]
        median = alternate(
            {
                "torch": lambda im=image: reader.readtext(im),
                "onnx": lambda im=image: read(engine, im),
            },
            rounds,
        )
        print(
            f"{name:18s} {median['torch'].wall:14.2f} s {median['onnx'].wall:12.2f} s "
            f"{median['torch'].wall / median['onnx'].wall:8.2f}x  "
            f"{same_reading(bare, ours)} ({len(bare)} lines)"
        )


def thread_counts(
    reader: easyocr.Reader, engine: EasyOcrReader, onnx_path: Path, image: str, rounds: int
) -> None:
    """One read at a time with 1 or 2 torch threads and 1 or 2 ONNX Runtime threads."""
    import torch

    picture = images()[image]
    print(f"\nThread counts, {image}, one read at a time (median wall and CPU seconds):")
    runs: dict[str, Callable[[], object]] = {}
    for threads in (1, 2):

        def bare(n: int = threads) -> object:
            torch.set_num_threads(n)
            return reader.readtext(picture)

        runs[f"easyocr torch={threads}"] = bare
    for ort_threads, spinning in ((1, False), (2, False), (2, True)):
        session = OnnxCraft.from_file(onnx_path, ort_threads, spinning=spinning)
        for threads in (1, 2):

            def onnx(n: int = threads, detector: OnnxCraft = session) -> object:
                torch.set_num_threads(n)
                engine.easyocr.detector = detector
                return read(engine, picture)

            spin = " spin" if spinning else ""
            runs[f"onnx ort={ort_threads}{spin} torch={threads}"] = onnx
    for name, took in alternate(runs, rounds).items():
        print(f"  {name:31s} {took.wall:6.2f} s wall {took.cpu:6.2f} s CPU")


def pool_sizes(engine: EasyOcrReader, onnx_path: Path, image: str, reads: int) -> None:
    """THREADS=1 with all cores per read against THREADS=2 with a core each: throughput."""
    import torch

    cores = os.cpu_count() or 1
    picture = images()[image]
    print(f"\nTHREADS, ONNX engine, {reads} x {image} at once (wall seconds per image):")
    for pool_threads in (1, 2):
        each = max(1, cores // pool_threads)
        torch.set_num_threads(each)
        engine.easyocr.detector = OnnxCraft.from_file(onnx_path, each)
        with ThreadPoolExecutor(pool_threads) as pool:

            def read_in(p: ThreadPoolExecutor, times: int) -> list[list[TextLine]]:
                return list(p.map(lambda im: read(engine, im), [picture] * times))

            read_in(pool, pool_threads)  # warm-up
            took = timed(lambda p=pool: read_in(p, reads))
        print(
            f"  THREADS={pool_threads}, {each} torch/ORT thread(s) each: "
            f"{took.wall / reads:6.2f} s per image"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per side and image")
    parser.add_argument(
        "--part", choices=["compare", "threads", "pool", "all"], default="all", help="what to run"
    )
    parser.add_argument(
        "--image", default="photo 1080x1349", help="the image for the thread sweeps"
    )
    parser.add_argument(
        "--model-dir", type=Path, help="MODEL_DIR for the ONNX export (default: temporary)"
    )
    args = parser.parse_args()

    import easyocr

    model_dir = args.model_dir or Path(tempfile.mkdtemp(prefix="bench-onnx-"))
    started = time.perf_counter()
    # The reader of the engine's one OCR thread (THREADS=1), read with from this thread.
    engine = ReaderFactory(
        Settings(
            lang_list="en",
            model_dir=model_dir,
            device="cpu",
            model_download=False,
            detector_runtime="onnx",
        )
    ).build()
    print(f"ONNX engine loaded (export or reuse included) in {time.perf_counter() - started:.1f} s")
    reader = easyocr.Reader(
        ["en"],
        gpu=False,
        model_storage_directory=str(bundled_model_dir()),
        download_enabled=False,
        verbose=False,
    )
    onnx_path = model_dir / export_name(file_md5(bundled_model_dir() / "craft_mlt_25k.pth"))
    if args.part in ("compare", "all"):
        compare(reader, engine, args.rounds)
    if args.part in ("threads", "all"):
        thread_counts(reader, engine, onnx_path, args.image, args.rounds)
    if args.part in ("pool", "all"):
        pool_sizes(engine, onnx_path, args.image, reads=4)


if __name__ == "__main__":
    main()
