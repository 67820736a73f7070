"""Load test: hundreds of concurrent /predict calls against the real service on 127.0.0.1.

    python bench/load.py [--requests 100000] [--concurrency 300] [--duration 60] [--max-queue 8]

Starts `python -m ocr_backend` (LANG_LIST=en, HOST=127.0.0.1, a free port),
warms it up, then sends the requests through a bounded asyncio httpx client
while probing /health every 20 ms, and prints: requests, 200s, 503s, lost,
/health p99, and the service's RSS before and after. Sends nothing beyond
127.0.0.1. tests/test_process.py runs a short form of the same.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = """<View><Image name="image" value="$ocr"/>
<Rectangle name="bbox" toName="image"/>
<TextArea name="transcription" toName="image" perRegion="true"/></View>"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def small_page(text: str = "LOAD TEST 42") -> str:
    """A data: URI of a small PNG with one line of text: OCR takes a fraction of a second."""
    try:
        face = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 28)
    except OSError:
        face = ImageFont.load_default(size=28)
    image = Image.new("RGB", (320, 60), "white")
    ImageDraw.Draw(image).text((10, 12), text, font=face, fill="black")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def predict_body(tasks: int = 1) -> dict:
    page = small_page()
    return {
        "tasks": [{"id": i, "data": {"ocr": page}} for i in range(1, tasks + 1)],
        "label_config": TEMPLATE,
    }


class Service:
    """`python -m ocr_backend` in a subprocess, on 127.0.0.1 and a free port."""

    def __init__(self, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.home = tempfile.mkdtemp(prefix="ocr-backend-load-")
        self.log = open(Path(self.home) / "service.log", "w+")  # noqa: SIM115 - closed in stop
        environment = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "src"),
            "LANG_LIST": "en",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "DEVICE": "cpu",
            "MODEL_DIR": self.home,
            "MODEL_DOWNLOAD": "false",
            **env,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ocr_backend"],
            env=environment,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_healthy(self, limit: float = 180) -> float:
        started = time.perf_counter()
        while time.perf_counter() - started < limit:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"ocr-backend exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"no healthy {self.url} within {limit} s:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        return (Path(self.home) / "service.log").read_text(errors="replace")

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class LoadReport:
    sent: int = 0
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)  # lost: no HTTP answer at all
    health: list[float] = field(default_factory=list)
    health_failures: int = 0
    seconds: float = 0.0
    rss_before: int = 0
    rss_after: int = 0

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    @property
    def health_p99(self) -> float:
        if len(self.health) < 2:
            return max(self.health, default=0.0)
        return statistics.quantiles(self.health, n=100, method="inclusive")[98]

    def lines(self) -> list[str]:
        other = {k: v for k, v in self.statuses.items() if k not in (200, 503)}
        mib = 2**20
        return [
            f"requests sent      {self.sent} in {self.seconds:.1f} s",
            f"200 answers        {self.statuses.get(200, 0)}",
            f"503 answers        {self.statuses.get(503, 0)}",
            f"other answers      {other}",
            f"lost (no answer)   {sum(self.errors.values())} {dict(self.errors)}",
            f"/health probes     {len(self.health)}, failed {self.health_failures}, "
            f"p50 {statistics.median(self.health) * 1000:.1f} ms, "
            f"p99 {self.health_p99 * 1000:.1f} ms, max {max(self.health) * 1000:.1f} ms",
            f"RSS before / after {self.rss_before / mib:.0f} MiB / {self.rss_after / mib:.0f} MiB "
            f"({(self.rss_after - self.rss_before) / mib:+.0f} MiB)",
        ]


async def run_load(
    url: str,
    *,
    requests: int,
    concurrency: int,
    duration: float,
    body: dict,
    timeout: float = 120,  # noqa: ASYNC109 - each request's, not the run's
) -> LoadReport:
    """Send up to `requests` /predict calls, at most `concurrency` at once, for at most
    `duration` seconds of sending; probe /health every 20 ms meanwhile."""
    report = LoadReport()
    slots = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    stop = threading.Event()

    async def one(client: httpx.AsyncClient) -> None:
        try:
            response = await client.post(url + "/predict", json=body)
            report.statuses[response.status_code] += 1
        except httpx.HTTPError as exc:
            report.errors[type(exc).__name__] += 1
        finally:
            slots.release()

    def probe() -> None:
        # In its own thread and connection: the load's event loop must not delay it.
        with httpx.Client(timeout=5) as client:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    ok = client.get(url + "/health").status_code == 200
                except httpx.HTTPError:
                    ok = False
                report.health.append(time.perf_counter() - started)
                report.health_failures += not ok
                stop.wait(0.02)

    started = time.perf_counter()
    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        pending = []
        while report.sent < requests and time.perf_counter() - started < duration:
            await slots.acquire()
            pending.append(asyncio.ensure_future(one(client)))
            report.sent += 1
        await asyncio.gather(*pending)
    report.seconds = time.perf_counter() - started
    stop.set()
    prober.join()
    return report


def measure(service: Service, **load) -> LoadReport:
    """Warm the service up, then load it and measure /health and memory."""
    body = load.pop("body", None) or predict_body()
    for _ in range(3):  # first calls allocate torch's buffers: not a leak
        httpx.post(service.url + "/predict", json=body, timeout=120).raise_for_status()
    rss_before = rss_bytes(service.pid)
    report = asyncio.run(run_load(service.url, body=body, **load))
    time.sleep(1)
    report.rss_before, report.rss_after = rss_before, rss_bytes(service.pid)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=300)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--max-queue", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    env = {"MAX_QUEUE": str(args.max_queue), "THREADS": str(args.threads), "LOG_LEVEL": "WARNING"}
    with Service(**env) as service:
        took = service.wait_healthy()
        print(f"service healthy after {took:.1f} s ({env})")
        report = measure(
            service, requests=args.requests, concurrency=args.concurrency, duration=args.duration
        )
    print("\n".join(report.lines()))
    print(f"exit code after SIGTERM: {service.process.returncode}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
