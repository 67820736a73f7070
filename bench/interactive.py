"""Interactive boxes: how well the service reads a box a user drew, and how long it takes.

Starts the service (uvicorn, 127.0.0.1) and an image server with the real
photos of tests/images/ and the sign photos tests/support/signs.py makes.
On each page, EasyOCR's `readtext` finds the lines it reads with confidence
>= 0.5; around each line five boxes are drawn as people draw them (tight,
loose, cutting into a neighbour, rotated, a polygon: tests/support/drawn_boxes.py)
and sent to `/predict` in `params.context`. Prints the mean and worst-box
character error rate (against the line's full-page text) of the service and
of `readtext` on the box's pixels saved as a file, the five boxes the service
loses most on, and the median and p95 latency of a box's /predict.

With `--full-size`, each box is also read with detection at the crop's full
size (as before ocr/drawn.py's DETECT_SIDE), the two readings alternating
box by box, so both paths' figures come from one run on the same machine.

    python -m bench.interactive [--every 1] [--device cpu] [--full-size]   (from the repo root)
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from ocr_backend.api import create_app
from ocr_backend.ocr import drawn
from ocr_backend.ocr.lines import TextLine, to_text_line
from ocr_backend.ocr.local import LocalEngine
from ocr_backend.settings import Settings
from tests.support.drawn_boxes import Case, all_boxes, make_pages, measure, report
from tests.support.image_server import ImageServer
from tests.support.label_studio import ls_predict_body


def start_service(settings: Settings, engine: LocalEngine) -> tuple[uvicorn.Server, str]:
    app = create_app(settings, engine=engine)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:  # the lifespan loads EasyOCR first
        time.sleep(0.1)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=1, help="draw boxes around every Nth line")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--readtext-cache",
        type=Path,
        help="a JSON file keeping readtext's readings between runs (same files, same readings)",
    )
    parser.add_argument(
        "--full-size",
        action="store_true",
        help="also read each box with detection at the crop's full size, alternating",
    )
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-interactive-"))
    (folder / "crops").mkdir()
    images = ImageServer(folder)
    pages = make_pages(folder)
    settings = Settings(
        lang_list="en", device=args.device, model_dir=folder / "models", model_download=False
    )
    engine = LocalEngine.load(settings)

    cache = Readings(args.readtext_cache)

    def readtext(path: Path) -> list[TextLine]:
        key = hashlib.sha256(path.read_bytes()).hexdigest()
        if key not in cache.found:
            # On the engine's own thread: a reader is fast only in the thread that built it.
            found = engine._pool.submit(engine.reader.easyocr.readtext, str(path)).result()
            cache.found[key] = [
                ([[float(x), float(y)] for x, y in box], str(text), float(score))
                for box, text, score in found
            ]
        return [to_text_line(box, text.strip(), score) for box, text, score in cache.found[key]]

    server, base = start_service(settings, engine)
    with httpx.Client(base_url=base, timeout=600) as client:

        def service(page: str, region: dict[str, Any]) -> tuple[str, float]:
            body = ls_predict_body(images.url(page))
            body["params"]["context"] = {"result": [region]}
            start = time.perf_counter()
            response = client.post("/predict", json=body)
            seconds = time.perf_counter() - start
            response.raise_for_status()
            items = response.json()["results"][0]["result"]
            text = next(i["value"]["text"][0] for i in items if i["type"] == "textarea")
            return text, seconds

        full_size: list[tuple[str, float]] = []
        side = drawn.DETECT_SIDE

        def both(page: str, region: dict[str, Any]) -> tuple[str, float]:
            """The box read with detection at full size and at DETECT_SIDE, in turns first."""
            read = {}
            for full in (True, False) if len(full_size) % 2 == 0 else (False, True):
                drawn.DETECT_SIDE = math.inf if full else side  # the service runs in-process
                read[full] = service(page, region)
            drawn.DETECT_SIDE = side
            full_size.append(read[True])
            return read[False]

        for name in pages:  # the first request of a page fetches it into the cache
            service(name, _corner())
        boxes = all_boxes(pages, readtext, every=args.every)
        cases = measure(
            boxes, pages, folder / "crops", readtext, both if args.full_size else service
        )
    cache.save()
    server.should_exit = True
    images.close()
    engine.close()

    print(f"device {settings.device}, {len(pages)} pages: {', '.join(pages)}")
    if full_size:
        before = [
            dataclasses.replace(case, service=text, seconds=seconds)
            for case, (text, seconds) in zip(cases, full_size, strict=True)
        ]
        print("detection at the crop's full size:")
        print(report(before))
        print(_latency(before))
        print(f"detection at DETECT_SIDE {drawn.DETECT_SIDE} px:")
        ratios = [new.seconds / old.seconds for new, old in zip(cases, before, strict=True)]
        changed = sum(new.service != old.service for new, old in zip(cases, before, strict=True))
        print(
            f"  per box, DETECT_SIDE / full size: median time ratio "
            f"{statistics.median(ratios):.2f}; readings changed {changed} of {len(cases)}"
        )
    print(report(cases))
    for kind in sorted({case.box.kind for case in cases}):
        of_kind = [case for case in cases if case.box.kind == kind]
        print(
            f"  {kind:8} {len(of_kind):4} boxes: service "
            f"{statistics.mean(c.service_cer for c in of_kind):.3f}, readtext on the crop "
            f"{statistics.mean(c.readtext_cer for c in of_kind):.3f}"
        )
    print(_latency(cases))


def _latency(cases: list[Case]) -> str:
    seconds = [case.seconds for case in cases]
    return (
        f"a box's /predict: median {statistics.median(seconds) * 1000:.0f} ms, "
        f"p95 {percentile(seconds, 0.95) * 1000:.0f} ms"
    )


def _corner() -> dict[str, Any]:
    """A small box in a page's corner, to have the page fetched and decoded before timing."""
    return {
        "image_rotation": 0,
        "value": {"x": 0, "y": 0, "width": 2, "height": 2, "rotation": 0},
        "id": "warm-up",
        "from_name": "bbox",
        "to_name": "image",
        "type": "rectangle",
        "origin": "manual",
    }


class Readings:
    """readtext's readings by the file's SHA-256, kept in a JSON file when one is named."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.found: dict[str, list[tuple[list[list[float]], str, float]]] = {}
        if path is not None and path.is_file():
            self.found = json.loads(path.read_text())

    def save(self) -> None:
        if self.path is not None:
            self.path.write_text(json.dumps(self.found))


if __name__ == "__main__":
    main()
