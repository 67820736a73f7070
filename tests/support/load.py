"""Load on the real service: many concurrent /predict calls while /health is probed.

Shared by bench/load.py (`python -m bench.load`, the long run) and
tests/test_process.py (a short one). Sends nothing beyond 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import io
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from PIL import Image, ImageDraw

from tests.support.drawing import font
from tests.support.service import ServiceProcess

TEMPLATE = """<View><Image name="image" value="$ocr"/>
<Rectangle name="bbox" toName="image"/>
<TextArea name="transcription" toName="image" perRegion="true"/></View>"""


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def small_png(text: str = "LOAD TEST 42") -> bytes:
    """A small PNG with one line of text: OCR takes a fraction of a second."""
    image = Image.new("RGB", (320, 60), "white")
    ImageDraw.Draw(image).text((10, 12), text, font=font(28), fill="black")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def small_page(text: str = "LOAD TEST 42") -> str:
    """A data: URI of a small_png."""
    return "data:image/png;base64," + base64.b64encode(small_png(text)).decode()


def predict_body(tasks: int = 1) -> dict:
    page = small_page()
    return {
        "tasks": [{"id": i, "data": {"ocr": page}} for i in range(1, tasks + 1)],
        "label_config": TEMPLATE,
    }


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


def measure(service: ServiceProcess, **load) -> LoadReport:
    """Warm the service up, then load it and measure /health and memory."""
    body = load.pop("body", None) or predict_body()
    for _ in range(3):  # first calls allocate torch's buffers: not a leak
        httpx.post(service.url + "/predict", json=body, timeout=120).raise_for_status()
    rss_before = rss_bytes(service.pid)
    report = asyncio.run(run_load(service.url, body=body, **load))
    time.sleep(1)
    report.rss_before, report.rss_after = rss_before, rss_bytes(service.pid)
    return report
