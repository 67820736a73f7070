"""Interactive box vs full page: how long a user waits for the text of the box they drew.

Starts the service (uvicorn, 127.0.0.1) and an image server, draws a
1080x1349 page of 25 lines, and times `/predict` with a one-line box in
`params.context` (A) against a full-page `/predict` of the same image (B),
alternating A and B after a warm-up. Both find the page in the image cache. Then, at the engine,
what reading a one-line crop costs as the service does it (a crop of one
line is recognised whole) and with detection first (what a crop of several
lines gets).

    python -m bench.interactive [--reps 5] [--device cpu]   (from the repository root)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import uvicorn

from ocr_backend.api import create_app
from ocr_backend.engine import OcrEngine
from ocr_backend.images.crop import crop_region
from ocr_backend.settings import Settings
from tests.support.drawing import draw_page
from tests.support.image_server import ImageServer
from tests.support.label_studio import OCR_TEMPLATE

PAGE_SIZE = (1080, 1349)
WORDS = "invoice order shipping total amount customer address delivery payment due".split()


def page_lines(count: int = 25) -> list[str]:
    return [
        f"{i + 1:02d} {WORDS[i % len(WORDS)]} {WORDS[(i * 3 + 1) % len(WORDS)]} {1000 + 37 * i}"
        for i in range(count)
    ]


def start_service(settings: Settings, engine: OcrEngine) -> tuple[uvicorn.Server, str]:
    app = create_app(settings, engine=engine)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:  # the lifespan loads EasyOCR first
        time.sleep(0.1)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def body(url: str, context: dict | None) -> dict:
    return {
        "tasks": [{"id": 1, "data": {"ocr": url}}],
        "project": "1.1",
        "label_config": OCR_TEMPLATE,
        "params": {"login": None, "password": None, "context": context},
    }


def box_context(box: tuple[float, ...], size: tuple[int, int], margin: float = 8) -> dict:
    left, top, right, bottom = box
    left, top, right, bottom = left - margin, top - margin, right + margin, bottom + margin
    width, height = size
    return {
        "result": [
            {
                "original_width": width,
                "original_height": height,
                "image_rotation": 0,
                "value": {
                    "x": left / width * 100,
                    "y": top / height * 100,
                    "width": (right - left) / width * 100,
                    "height": (bottom - top) / height * 100,
                    "rotation": 0,
                },
                "id": "bench-box",
                "from_name": "bbox",
                "to_name": "image",
                "type": "rectangle",
                "origin": "manual",
            }
        ]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="timed calls of each kind")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-interactive-"))
    image, drawn = draw_page(page_lines(), size=PAGE_SIZE, font_size=30, margin=40, gap=21)
    assert drawn[-1].box[3] < PAGE_SIZE[1], "the lines do not fit on the page"
    images = ImageServer(folder)
    url = images.put("page.png", image)

    settings = Settings(
        lang_list="en", device=args.device, model_dir=folder / "models", model_download=False
    )
    engine = OcrEngine.load(settings)
    service, base = start_service(settings, engine)
    timings: dict[str, list[float]] = {"box": [], "page": []}
    with httpx.Client(base_url=base, timeout=600) as client:

        def call(context: dict | None) -> tuple[float, dict]:
            start = time.perf_counter()
            response = client.post("/predict", json=body(url, context))
            elapsed = time.perf_counter() - start
            response.raise_for_status()
            return elapsed, response.json()["results"][0]

        _, full = call(None)  # warm-up; fetches the page into the cache
        regions = len({item["id"] for item in full["result"]})
        _, warm = call(box_context(drawn[0].box, image.size))
        print(f"page: {image.width}x{image.height}, {len(drawn)} lines drawn, {regions} read")
        for rep in range(args.reps):
            line = drawn[(rep * 7 + 3) % len(drawn)]
            elapsed, answer = call(box_context(line.box, image.size))
            timings["box"].append(elapsed)
            text = next(i["value"]["text"][0] for i in answer["result"] if i["type"] == "textarea")
            print(f"  box  {elapsed * 1000:8.1f} ms  {text!r} (drawn {line.text!r})")
            elapsed, _ = call(None)
            timings["page"].append(elapsed)
            print(f"  page {elapsed * 1000:8.1f} ms")

    box, page = statistics.median(timings["box"]), statistics.median(timings["page"])
    print(f"device {settings.device}, {args.reps} repetitions each, alternating")
    print(f"median interactive one-line box: {box * 1000:.1f} ms")
    print(f"median full-page /predict:       {page * 1000:.1f} ms")
    print(f"full page / box:                 {page / box:.1f}x")
    service.should_exit = True
    images.close()
    compare_readers(engine, np.asarray(image), drawn, args.reps)
    engine.close()


def compare_readers(engine: OcrEngine, pixels: np.ndarray, drawn: list, reps: int) -> None:
    """What the service does with a one-line crop vs detection and recognition on it."""
    timings: dict[str, list[float]] = {"service": [], "detect": []}
    for rep in range(reps + 1):
        line = drawn[(rep * 5 + 2) % len(drawn)]
        value = box_context(line.box, (pixels.shape[1], pixels.shape[0]))["result"][0]["value"]
        crop = crop_region(pixels, value)
        # On the engine's own thread, as the service reads: its reader is fast only there.
        start = time.perf_counter()
        asyncio.run(engine.read_region(crop))
        middle = time.perf_counter()
        asyncio.run(engine.read(crop))
        end = time.perf_counter()
        if rep:  # the first round warms up
            timings["service"].append(middle - start)
            timings["detect"].append(end - middle)
    service, detect = (statistics.median(timings[k]) for k in ("service", "detect"))
    print("engine only, one-line crop:")
    print(f"  read_region (one line: recognition only): {service * 1000:.1f} ms")
    print(f"  detection + recognition on the crop:      {detect * 1000:.1f} ms")


if __name__ == "__main__":
    main()
