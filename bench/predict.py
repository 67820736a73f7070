"""The service against bare EasyOCR `readtext` on the same images, side by side in one run.

Starts `ocr-backend` as a subprocess (LANG_LIST=en, CPU unless --device), serves
the pages from an HTTP server on 127.0.0.1, and alternates rounds of:
  A. one-task /predict requests, one per image (the first request is counted);
  B. one batched /predict request with every image;
  C. bare `reader.readtext` on the same decoded images in this process, with the
     same torch thread count the service uses.
Prints images/s for each and the ratios. Usage:
  .venv/bin/python -m bench.predict [--rounds 3] [--env DETECTOR_RUNTIME=onnx]
(from the repository root).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench.pages import pages
from ocr_backend.label_studio.config import STOCK_OCR_CONFIG as OCR_TEMPLATE
from tests.support.image_server import ImageServer
from tests.support.load import rss_bytes
from tests.support.service import ServiceProcess, console_script


def rss_mib(pid: int) -> float:
    return rss_bytes(pid) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the service")
    parser.add_argument("--images", type=int, default=0, help="use only the first N pages")
    parser.add_argument(
        "--show-response", action="store_true", help="print the batched response, trimmed"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    named = pages()[: args.images or None]
    server = ImageServer(work)
    urls = [server.put(f"{name}.png", image) for name, image in named]
    arrays = [np.asarray(image) for _, image in named]

    settings = dict(kv.split("=", 1) for kv in args.env)
    service = ServiceProcess(
        console_script(),
        DEVICE=args.device,
        MODEL_DIR=str(work / "models"),
        LOG_LEVEL="WARNING",
        **settings,
    )
    env = service.env
    ready = service.wait_healthy()
    client = httpx.Client(base_url=service.url, timeout=600, trust_env=False)
    rss_rest = rss_mib(service.pid)
    print(f"service healthy after {ready:.1f} s; RSS at rest {rss_rest:.0f} MiB")

    def predict(batch: list[str]) -> dict:
        body = {"tasks": [{"id": i, "data": {"ocr": u}} for i, u in enumerate(batch)],
                "label_config": OCR_TEMPLATE, "project": "1.1"}  # fmt: skip
        response = client.post("/predict", json=body)
        response.raise_for_status()
        errors = [r.get("error") for r in response.json()["results"] if r.get("error")]
        assert not errors, errors
        return response.json()

    # Bare EasyOCR in this process, with the thread count the service gives torch.
    import easyocr
    import easyocr_en_models
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(env.get("THREADS", "1"))))
    reader = easyocr.Reader(["en"], gpu=args.device != "cpu",
                            model_storage_directory=easyocr_en_models.model_dir(),
                            user_network_directory=str(work / "user_network"),
                            download_enabled=False, verbose=False)  # fmt: skip

    timings: dict[str, list[float]] = {"single": [], "batched": [], "readtext": []}
    peak = rss_rest
    for round_ in range(args.rounds):
        t = time.perf_counter()
        for url in urls:  # round 0's first request is the service's very first
            predict([url])
        timings["single"].append(time.perf_counter() - t)
        peak = max(peak, rss_mib(service.pid))
        t = time.perf_counter()
        predict(urls)
        timings["batched"].append(time.perf_counter() - t)
        peak = max(peak, rss_mib(service.pid))
        t = time.perf_counter()
        for array in arrays:
            reader.readtext(array)
        timings["readtext"].append(time.perf_counter() - t)
        print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in timings.items()))

    if args.show_response:
        show(predict(urls))
    n = len(urls)
    rate = {k: n / statistics.median(v) for k, v in timings.items()}
    print(f"\n{n} images x {args.rounds} rounds, device {args.device}, service env: "
          f"{' '.join(args.env) or '(defaults)'}")  # fmt: skip
    for key in ("readtext", "single", "batched"):
        median = statistics.median(timings[key])
        print(f"  {key:9s} {rate[key]:6.3f} images/s  (median {median:.2f} s)")
    print(f"  ratio service one-task / bare readtext: {rate['single'] / rate['readtext']:.3f}")
    print(f"  ratio service batched  / bare readtext: {rate['batched'] / rate['readtext']:.3f}")
    print(f"  service RSS: at rest {rss_rest:.0f} MiB, peak {peak:.0f} MiB")
    service.stop()
    server.close()


def show(answer: dict) -> None:
    """The response with each prediction's first region in full and the rest counted."""
    import json

    trimmed = []
    for prediction in answer["results"]:
        regions = {item["id"] for item in prediction["result"]}
        first = next(iter(regions), None)
        texts = [i["value"]["text"][0] for i in prediction["result"] if i["type"] == "textarea"]
        trimmed.append({
            **prediction,
            "result": [i for i in prediction["result"] if i["id"] == first]
            + [f"... {len(regions) - 1} more regions"],
            "texts read": texts[:6] + (["..."] if len(texts) > 6 else []),
        })  # fmt: skip
    print(json.dumps({"results": trimmed}, indent=1))


if __name__ == "__main__":
    main()
