"""A bulk job against a bare `readtext` loop, and an annotator's wait during the job.

Starts `ocr-backend` as a subprocess (LANG_LIST=en, CPU, PREDICT_DEADLINE=80, the
default), serves the images from 127.0.0.1,
and measures, in one run:
  A. bulk job: one /predict with every image, then /jobs polled until all are read:
     images/s from the request to the last image read;
  B. bare `reader.readtext` over the same decoded images in this process, with the
     torch thread count the service uses: images/s;
  C. one-task /predict requests (each a new small page) sent while the job runs,
     against the same kind of request on the idle service: seconds each;
  D. the service's RSS during the job.
Prints the ratios (targets: A/B >= 0.95, C during / C idle < 1.5). Usage:
  .venv/bin/python -m bench.bulk [--copies 3] [--probes 5]   (from the repository root)
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from bench.pages import document, pages
from bench.predict import OCR_TEMPLATE, rss_mib
from tests.support.image_server import ImageServer
from tests.support.processes import free_port

PHOTOS = Path(__file__).resolve().parents[1] / "tests" / "images"


def main() -> None:
    try:
        run()
    finally:
        for service in SERVICES:
            service.terminate()


SERVICES: list[subprocess.Popen] = []


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=2, help="each image this many times")
    parser.add_argument("--probes", type=int, default=5, help="one-task requests during the job")
    parser.add_argument("--threads", default="1")
    parser.add_argument(
        "--small", action="store_true", help="only the smaller pages and photo (a busy machine)"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-bulk-"))
    images: list[tuple[str, Image.Image]] = list(pages())
    photos = sorted(p for p in PHOTOS.iterdir() if p.suffix in {".png", ".jpeg", ".jpg"})
    images += [(p.stem, Image.open(p).convert("RGB")) for p in photos]
    if args.small:
        images = [(n, i) for n, i in images if n.startswith(("receipt", "label", "diagram"))]
    named = []
    for copy in range(args.copies):  # copies under new names: each is a task of its own
        for name, image in images:
            image.save(work / f"{name}-{copy}.png")
            named.append((f"{name}-{copy}", image))
    probes = []
    for index in range(args.probes * 2):  # small pages, like a task an annotator opens
        document(800, 300, lines=4, seed=100 + index).save(work / f"probe-{index}.png")
        probes.append(f"probe-{index}")
    server = ImageServer(work)
    image_port = server.port
    base_images = f"http://127.0.0.1:{image_port}"
    arrays = [np.asarray(image) for _, image in named]

    port = free_port()
    env = {**os.environ, "LANG_LIST": "en", "HOST": "127.0.0.1", "PORT": str(port),
           "DEVICE": "cpu", "MODEL_DIR": str(work / "models"), "MODEL_DOWNLOAD": "false",
           "LOG_LEVEL": "WARNING", "PREDICT_DEADLINE": "80", "THREADS": args.threads}  # fmt: skip
    service = subprocess.Popen([str(Path(sys.executable).parent / "ocr-backend")], env=env)
    SERVICES.append(service)
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base, timeout=600, trust_env=False)
    while True:
        try:
            if client.get("/health").json()["status"] == "UP":
                break
        except httpx.HTTPError:
            if service.poll() is not None:
                sys.exit(f"ocr-backend exited with {service.returncode}")
            time.sleep(0.2)
    rss_rest = rss_mib(service.pid)

    def one_task(name: str, warm_up: bool = False) -> float:
        body = {"tasks": [{"id": 1, "data": {"ocr": f"{base_images}/{name}.png"}}],
                "label_config": OCR_TEMPLATE, "project": f"probe.{name}"}  # fmt: skip
        started = time.perf_counter()
        response = client.post("/predict", json=body)
        took = time.perf_counter() - started
        if not warm_up and "result" not in response.json()["results"][0]:
            print(f"  one-task request not read within PREDICT_DEADLINE ({took:.1f} s)")
        return took

    one_task(probes.pop(), warm_up=True)  # warm-up: the first request pays for lazy imports

    peak = [rss_rest]

    def run_job(project: str, probes_wanted: int) -> tuple[float, float, int, list[float]]:
        """One bulk /predict, polled to its end: seconds, answer seconds, read in it, probes."""
        body = {
            "tasks": [{"id": i, "data": {"ocr": f"{base_images}/{name}.png"}}
                      for i, (name, _) in enumerate(named)],
            "label_config": OCR_TEMPLATE, "project": project,
        }  # fmt: skip
        finished = threading.Event()

        def sample_rss() -> None:
            while not finished.wait(0.2):
                peak[0] = max(peak[0], rss_mib(service.pid))

        threading.Thread(target=sample_rss, daemon=True).start()
        started = time.perf_counter()
        answered: dict[str, object] = {}

        def send() -> None:  # in a thread: people's requests are sent while it runs
            with httpx.Client(base_url=base, timeout=600, trust_env=False) as own:
                answered["results"] = own.post("/predict", json=body).json()["results"]
                answered["seconds"] = time.perf_counter() - started

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(1.0)
        during: list[float] = []
        rng = random.Random(0)
        while True:
            jobs = client.get("/jobs").json()["jobs"]
            job = next((j for j in jobs if j.get("project", project) == project), None)
            if job is not None and not job["queued"] and not job["reading"]:
                break
            if len(during) < probes_wanted:
                time.sleep(rng.uniform(0.5, 3.0))
                during.append(one_task(probes.pop()))
            else:
                time.sleep(0.1)
        seconds = time.perf_counter() - started
        finished.set()
        sender.join()
        assert job["failed"] == 0, job
        results: list[dict] = answered["results"]  # type: ignore[assignment]
        read_in_answer = sum(1 for item in results if "result" in item)
        return seconds, float(answered["seconds"]), read_in_answer, during  # type: ignore[arg-type]

    # A + D: the job alone. Its tasks have ids and data of their own: nothing is joined.
    job_seconds, answered_in, in_answer, _ = run_job("1.bulk", 0)

    # B: bare readtext, same images, same thread count as the service gives torch.
    import easyocr
    import easyocr_en_models
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(args.threads)))
    reader = easyocr.Reader(
        ["en"],
        gpu=False,
        model_storage_directory=easyocr_en_models.model_dir(),
        user_network_directory=str(work / "user_network"),
        download_enabled=False,
        verbose=False,
    )
    t = time.perf_counter()
    for array in arrays:
        reader.readtext(array)
    bare_seconds = time.perf_counter() - t

    n = len(named)
    print(f"{n} images ({len(images)} kinds x {args.copies}), THREADS={args.threads}, CPU")
    print(
        f"  bulk job      {n / job_seconds:6.3f} images/s  ({job_seconds:.1f} s; /predict "
        f"answered in {answered_in:.1f} s with {in_answer} read, the rest in the background)"
    )
    print(f"  bare readtext {n / bare_seconds:6.3f} images/s  ({bare_seconds:.1f} s)")
    print(f"  ratio bulk job / bare readtext: {bare_seconds / job_seconds:.3f}  (target >= 0.95)")
    print(f"  service RSS: at rest {rss_rest:.0f} MiB, peak during the job {peak[0]:.0f} MiB")

    # C: a second job (the same images under new task data) with one-task requests in it,
    # then the same kind of one-task request with nothing else running.
    for name, _ in named:
        os.link(work / f"{name}.png", work / f"again-{name}.png")
    named = [(f"again-{name}", image) for name, image in named]
    _, _, _, during = run_job("2.bulk", args.probes)
    idle = [one_task(probes.pop()) for _ in range(min(len(probes), args.probes))]

    if during and idle:
        ratio = statistics.median(during) / statistics.median(idle)
        print(f"  one-task request during the job: median {statistics.median(during):.2f} s, "
              f"max {max(during):.2f} s ({len(during)} requests)")  # fmt: skip
        print(f"  one-task request, idle service:  median {statistics.median(idle):.2f} s")
        print(f"  ratio during / idle: {ratio:.2f}  (target < 1.5)")
    service.terminate()
    service.wait(timeout=60)
    server.close()


if __name__ == "__main__":
    main()
