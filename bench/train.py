"""Fine-tuning the recogniser on a project of photographed meter displays: what it costs
and what it gains.

A stand-in Label Studio on 127.0.0.1 holds a project of photographed
14-segment displays (tests/support/meter_displays.py), every line drawn and
transcribed as an annotator would. The project is exported as
`ocr-backend export` does, the english_g2 recogniser fine-tuned on its
training tasks, and the held-out tasks (a fifth, by task) read before and
after. Then the real photos of tests/images/ are read whole (detector and
recogniser) with the stock and with the project's recogniser: the CER of the
words each holds (tests/images/README.md) says how much a project model forgets
of other text.

    nice -n 10 python -m bench.train [--tasks 64] [--lines 5] [--epochs 30] [--threads 2]
        [--variants 3] [--never-annotated 0] [--seed 10000]

Prints training time, lines/s, held-out CER before and after, and the real
photos' CER before and after; with --never-annotated N, also the CER per line
of N more photos no one annotated, read whole before and after (what the
end-to-end test measures). Run it from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ocr_backend.images.fetch import new_http_client
from ocr_backend.label_studio.client import LabelStudioClient
from ocr_backend.label_studio.config import STOCK_OCR_CONFIG
from ocr_backend.label_studio.storage import LabelStudioImageFetcher
from ocr_backend.ocr.easyocr_reader import load_recogniser
from ocr_backend.ocr.weights import bundled_model_dir
from ocr_backend.settings import Settings
from ocr_backend.training.alphabet import recogniser_model
from ocr_backend.training.export import export_project
from ocr_backend.training.finetune import fine_tune
from tests.support.label_studio_api import LabelStudioApi
from tests.support.meter_displays import (
    MeterPhoto,
    annotation_result,
    fonts_missing,
    line_error_rate,
    meter_photo,
    text_per_line,
)
from tests.support.photos import DIAGRAM, SCREENSHOT, STREET_SIGNS

PROJECT = 3
# The Latin words each real photo holds (tests/images/README.md).
PHOTO_WORDS = {
    STREET_SIGNS: [
        "Yuyuan Rd.",
        "NO LITTER",
        "MINATO CITY",
        "Seoul",
        "Pyeongyang",
        "56Km",
        "205Km",
    ],
    DIAGRAM: [
        "EasyOCR Framework",
        "Pre-Process",
        "CRAFT",
        "Mid-Process",
        "ResNet+LSTM+CTC",
        "Greedy Decoder",
        "Post-Process",
        "Other Detection Models",
        "Data Generator",
        "Training Pipeline",
    ],
    SCREENSHOT: [
        "Projects",
        "MMDetection 3",
        "Dashboard",
        "Members",
        "Data Manager",
        "Settings",
        "Selection Details",
        "Regions",
        "Relations",
        "Airplane",
        "Car",
        "Opossum",
        "Person",
    ],
}


def project(server: LabelStudioApi, tasks: int, lines: int, seed: int) -> None:
    server.add_project(PROJECT, STOCK_OCR_CONFIG)
    for number in range(tasks):
        photo = meter_photo(seed=seed + number, lines=lines)
        server.uploads[f"upload/{PROJECT}/meter-{number}.jpg"] = photo.jpeg
        server.add_task(
            PROJECT,
            {"ocr": f"/data/upload/{PROJECT}/meter-{number}.jpg"},
            {"result": annotation_result(photo)},
        )


async def export(server: LabelStudioApi, out: Path, settings: Settings) -> None:
    model = recogniser_model(settings.lang_list)
    async with new_http_client(30.0) as http:
        fetcher = LabelStudioImageFetcher(http, max_bytes=50_000_000, settings=settings)
        label_studio = fetcher.connect(None)
        assert label_studio.host is not None
        await export_project(
            PROJECT,
            out,
            client=LabelStudioClient(http, label_studio.host, label_studio.auth),
            fetcher=fetcher,
            label_studio=label_studio,
            languages=settings.lang_list,
            alphabet=model.characters,
            recogniser=model.name,
            max_pixels=50_000_000,
        )


def whole_reader(weights: Path | None) -> Any:
    """EasyOCR's reader (detector and recogniser), with the project's recogniser if given."""
    import easyocr

    with tempfile.TemporaryDirectory() as scratch:
        reader = easyocr.Reader(
            ["en"],
            gpu=False,
            model_storage_directory=str(bundled_model_dir()),
            user_network_directory=scratch,
            download_enabled=False,
            verbose=False,
        )
    if weights is not None:
        load_recogniser(reader, weights, ["en"])
    return reader


def photo_cer(weights: Path | None) -> float:
    """CER of the photos' known words: each word against the line read nearest to it."""
    from rapidfuzz import process
    from rapidfuzz.distance import Levenshtein

    reader = whole_reader(weights)
    edits = characters = 0
    for path, words in PHOTO_WORDS.items():
        texts = reader.readtext(np.asarray(Image.open(path).convert("RGB")), detail=0)
        for word in words:
            best = process.extractOne(word, texts, scorer=Levenshtein.distance)
            edits += best[1] if best else len(word)
            characters += len(word)
    return edits / characters


def never_annotated_cer(weights: Path | None, photos: list[MeterPhoto]) -> float:
    """CER per line of photos no one annotated, read whole (detector and recogniser) as
    the service reads a task: what tests/e2e/test_60_training.py measures."""
    reader = whole_reader(weights)
    read: list[str] = []
    for photo in photos:
        found = reader.readtext(photo.jpeg)
        centres = [
            (tuple(np.mean(np.asarray(box, dtype=float), axis=0)), text) for box, text, _ in found
        ]
        read += text_per_line(centres, photo)
    return line_error_rate(read, photos)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--lines", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", type=int, default=3, help="copies of each line per pass")
    parser.add_argument(
        "--never-annotated",
        type=int,
        default=0,
        help="also read this many photos no one annotated, whole, before and after",
    )
    parser.add_argument("--seed", type=int, default=10_000, help="the first photo's seed")
    args = parser.parse_args()
    if fonts_missing():
        raise SystemExit(fonts_missing())
    import torch

    torch.set_num_threads(args.threads)
    server = LabelStudioApi(storage_url="http://127.0.0.1:9")
    try:
        project(server, args.tasks, args.lines, args.seed)
        with tempfile.TemporaryDirectory() as folder:
            settings = Settings(
                lang_list="en",
                label_studio_host=server.host,
                label_studio_access_token=server.personal_access_token,
                model_dir=Path(folder) / "models",
            )
            started = time.monotonic()
            asyncio.run(export(server, Path(folder) / "export", settings))
            exported = time.monotonic() - started
            model = recogniser_model(("en",))
            stock = bundled_model_dir()
            assert stock is not None
            weights = Path(folder) / "project.pth"
            outcome = fine_tune(
                Path(folder) / "export",
                stock / model.filename,
                model,
                ("en",),
                weights,
                epochs=args.epochs,
                device=args.device,
                variants=args.variants,
                progress=lambda share, step: print(f"  {share:4.0%} {step}", flush=True),
            )
            print(f"  {outcome}", flush=True)
            before, after = photo_cer(None), photo_cer(weights)
            unseen = [
                meter_photo(seed=args.seed + 5_000 + n, lines=args.lines)
                for n in range(args.never_annotated)
            ]
            if unseen:
                unseen_before = never_annotated_cer(None, unseen)
                unseen_after = never_annotated_cer(weights, unseen)
    finally:
        server.close()
    print(f"project: {args.tasks} tasks x {args.lines} lines; export {exported:.1f} s")
    print(
        f"training: {outcome.train_lines} lines, {outcome.epochs} epochs, {outcome.seconds:.0f} s "
        f"on {args.threads} torch thread(s) ({args.device}), {outcome.lines_per_second:.1f} lines/s"
    )
    print(
        f"held-out tasks: {outcome.validation_lines} lines, CER {outcome.cer_before:.3f} stock "
        f"-> {outcome.cer_after:.3f} fine-tuned ({'better' if outcome.better else 'NOT better'})"
    )
    print(
        f"real photos (tests/images) known words: CER {before:.3f} stock -> {after:.3f} fine-tuned"
    )
    if unseen:
        print(
            f"never-annotated photos ({len(unseen)} x {args.lines} lines, read whole): CER per "
            f"line {unseen_before:.3f} stock -> {unseen_after:.3f} fine-tuned"
        )


if __name__ == "__main__":
    main()
