"""Interactive boxes on real photos: how long a user waits, and how well the box reads.

Starts the service (uvicorn, 127.0.0.1) and an image server with the real
photos of tests/images/ and camera-like variants of them (tests/photos.py).
On each page, EasyOCR's `readtext` finds the lines it reads with confidence
>= 0.5; around each line a box is drawn loosely, as people draw (an uneven
margin, one in three cutting into a neighbouring line), and sent to
`/predict` in `params.context`. Prints the median and p95 latency of these
one-line boxes against a full-page `/predict` of the same pages, and the
character error rate of the text the service puts in the box against
`readtext` on the box's pixels saved as a file, both measured against the
line's full-page text. Then, at the engine, what reading a one-line crop
costs as the service does it against detection and recognition on it.

    python -m bench.interactive [--lines 8] [--device cpu]   (from the repository root)
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from PIL import Image

from ocr_backend.api import create_app
from ocr_backend.images.crop import Crop, crop_region
from ocr_backend.images.decode import decode_page
from ocr_backend.label_studio.regions import reading_order
from ocr_backend.ocr.lines import TextLine, to_text_line
from ocr_backend.ocr.local import LocalEngine
from ocr_backend.settings import Settings
from tests.support.label_studio import OCR_TEMPLATE
from tests.support.photos import (
    DIAGRAM,
    SCREENSHOT,
    STREET_SIGNS,
    DrawnBox,
    camera_jpeg,
    character_error_rate,
    encoded,
    light_on_dark,
    lines_of,
    loose_rectangle,
    spread,
)


def serve_folder(folder: Path) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start_service(settings: Settings, engine: LocalEngine) -> tuple[uvicorn.Server, str]:
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


def box_context(box: DrawnBox, size: tuple[int, int]) -> dict:
    width, height = size
    return {
        "result": [
            {
                "original_width": width,
                "original_height": height,
                "image_rotation": 0,
                "value": box.value,
                "id": "bench-box",
                "from_name": "bbox",
                "to_name": "image",
                "type": "rectangle",
                "origin": "manual",
            }
        ]
    }


def make_pages(folder: Path) -> dict[str, Path]:
    """The real photos, and the variants a user's camera or screen would give."""
    screenshot = Image.open(SCREENSHOT).convert("RGB")
    made = {
        "street_signs.png": STREET_SIGNS.read_bytes(),
        "diagram.jpeg": DIAGRAM.read_bytes(),
        "camera.jpeg": camera_jpeg(Image.open(DIAGRAM)),
        "screenshot.png": SCREENSHOT.read_bytes(),
        "dark_mode.png": encoded(light_on_dark(screenshot), "PNG"),
    }
    for name, data in made.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in made}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=8, help="boxes drawn per page")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-interactive-"))
    paths = make_pages(folder)
    images = serve_folder(folder)
    settings = Settings(
        lang_list="en", device=args.device, model_dir=folder / "models", model_download=False
    )
    engine = LocalEngine.load(settings)

    def readtext(path: Path) -> list[TextLine]:
        # On the engine's own thread: a reader is fast only in the thread that built it.
        found = engine._pool.submit(engine.reader.easyocr.readtext, str(path)).result()
        return [to_text_line(box, str(text).strip(), score) for box, text, score in found]

    service, base = start_service(settings, engine)
    timings: dict[str, list[float]] = {"box": [], "page": []}
    errors: dict[str, list[float]] = {"service": [], "readtext": []}
    crops: list[Crop | None] = []
    with httpx.Client(base_url=base, timeout=600) as client:

        def call(url: str, context: dict | None) -> tuple[float, dict]:
            start = time.perf_counter()
            response = client.post("/predict", json=body(url, context))
            elapsed = time.perf_counter() - start
            response.raise_for_status()
            return elapsed, response.json()["results"][0]

        for name, path in paths.items():
            url = f"http://127.0.0.1:{images.server_address[1]}/{name}"
            elapsed, _ = call(url, None)  # fetches the page into the cache
            timings["page"].append(elapsed)
            page = Image.open(path)
            found = engine._pool.submit(engine.reader.easyocr.readtext, str(path)).result()
            chosen = spread(lines_of(found), args.lines)
            print(f"{name}: {page.width}x{page.height}, full page {elapsed * 1000:.0f} ms")
            decoded = decode_page(path.read_bytes(), max_pixels=1 << 40)
            for turn, line in enumerate(chosen):
                box = loose_rectangle(line, page.size, turn)
                elapsed, answer = call(url, box_context(box, page.size))
                timings["box"].append(elapsed)
                ours = next(
                    i["value"]["text"][0] for i in answer["result"] if i["type"] == "textarea"
                )
                saved = folder / f"crop-{name}-{turn}.png"
                page.convert("RGB").crop(box.bounds).save(saved)
                theirs = reading_order(readtext(saved))
                errors["service"].append(character_error_rate(ours, line.text))
                errors["readtext"].append(character_error_rate(theirs, line.text))
                crops.append(crop_region(decoded, box.value))
                print(
                    f"  box {elapsed * 1000:7.0f} ms  {line.text!r:28} "
                    f"service {ours!r:30} readtext on the crop {theirs!r}"
                )

    box, page_time = statistics.median(timings["box"]), statistics.median(timings["page"])
    print(f"device {settings.device}, {len(timings['box'])} one-line boxes on {len(paths)} pages")
    print(
        f"one-line box /predict: median {box * 1000:.0f} ms, "
        f"p95 {percentile(timings['box'], 0.95) * 1000:.0f} ms"
    )
    print(f"full-page /predict:    median {page_time * 1000:.0f} ms")
    print(
        "character error rate against the full-page text: "
        f"service {statistics.mean(errors['service']):.3f}, "
        f"readtext on the crop saved as a file {statistics.mean(errors['readtext']):.3f}"
    )
    service.should_exit = True
    images.shutdown()
    compare_readers(engine, [crop for crop in crops if crop is not None])
    engine.close()


def compare_readers(engine: LocalEngine, crops: list[Crop]) -> None:
    """What the service does with one-line crops vs detection and recognition on them."""
    timings: dict[str, list[float]] = {"service": [], "detect": []}
    for crop in crops:
        # On the engine's own thread, as the service reads: its reader is fast only there.
        start = time.perf_counter()
        asyncio.run(engine.read_region(crop))
        middle = time.perf_counter()
        asyncio.run(engine.read(crop.image))
        end = time.perf_counter()
        timings["service"].append(middle - start)
        timings["detect"].append(end - middle)
    service, detect = (statistics.median(timings[k]) for k in ("service", "detect"))
    print(f"engine only, {len(crops)} one-line crops, median:")
    print(f"  read_region (one line: recognition only): {service * 1000:.1f} ms")
    print(f"  detection + recognition on the crop:      {detect * 1000:.1f} ms")


if __name__ == "__main__":
    main()
