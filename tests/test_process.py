"""The real service as a process: under load, on SIGTERM, and with WORKERS=2.

Everything goes to 127.0.0.1. The load test is the short form of `python -m bench.load`.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.support.image_server import HeldImage
from tests.support.load import TEMPLATE, measure, small_png
from tests.support.metrics import samples, value
from tests.support.service import ServiceProcess

pytestmark = pytest.mark.slow  # real service processes

# The service's memory may grow by this much under load, and no more (no leak).
RSS_GROWTH_LIMIT = 100 * 2**20


def test_under_load_every_request_is_answered_and_health_stays_quick():
    with ServiceProcess(MAX_QUEUE="8", LOG_LEVEL="WARNING") as service:
        service.wait_healthy()
        report = measure(service, requests=300, concurrency=200, duration=30, timeout=90)
        print("\n" + "\n".join(report.lines()))
        assert service.stop() == 0
    assert report.sent == 300
    assert report.errors == {}, "requests got no HTTP answer"
    assert set(report.statuses) <= {200, 503}
    assert report.answered == report.sent
    assert report.statuses[200] > 0 and report.statuses[503] > 0  # the queue was full
    assert report.health_failures == 0
    assert report.health_p99 < 0.2
    assert report.rss_after - report.rss_before < RSS_GROWTH_LIMIT


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_sigterm_lets_requests_in_flight_finish_then_exits_0():
    """A /predict of 4 tasks is in flight when SIGTERM comes: it is answered in full, then 0.

    The service reads three of the images at once; the fourth comes from a server
    that holds it until the service has got the SIGTERM and stopped listening.
    So the request is surely in flight during the shutdown, and what is left to
    do then is one small one-line image, a few seconds at most on a busy
    machine: well inside uvicorn's 30 s drain, however slow OCR runs.
    """
    with HeldImage(small_png("SIGTERM WAITS")) as images, ServiceProcess() as service:
        service.wait_healthy()
        urls = [images.url(f"page-{i}.png") for i in range(1, 4)] + [images.held_url("last.png")]
        body = {
            "tasks": [{"id": i, "data": {"ocr": url}} for i, url in enumerate(urls, start=1)],
            "label_config": TEMPLATE,
        }

        async def scenario() -> httpx.Response:
            async with httpx.AsyncClient(base_url=service.url, timeout=120) as client:
                slow = asyncio.ensure_future(client.post("/predict", json=body))
                # Up to 120 s, until it is admitted, 3 images are read and the 4th is asked for.
                for _ in range(1200):
                    page = samples((await client.get("/metrics")).text)
                    read = value(page, "ocr_backend_ocr_seconds_count")
                    waiting = value(page, "ocr_backend_queue_images")
                    if waiting == 4 and read == 3 and images.requested.is_set():
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError(f"never 4 admitted, 3 read: {waiting=} {read=}")
                service.terminate()  # SIGTERM
                for _ in range(400):  # up to 20 s, until the shutdown has begun
                    if not listening(service.port):
                        break
                    await asyncio.sleep(0.05)
                assert not listening(service.port), "still listening 20 s after SIGTERM"
                assert not slow.done(), "the request did not wait for its last image"
                images.release()
                return await slow

        response = asyncio.run(scenario())
        started = time.perf_counter()
        code = service.wait(timeout=60)
        output = service.output()
    assert response.status_code == 200, output
    results = response.json()["results"]
    assert len(results) == 4
    assert all("error" not in r and r["result"] for r in results)
    assert code == 0, output
    assert time.perf_counter() - started < 30


def worker_pids(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def environment_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


@pytest.mark.timeout(400)
def test_with_two_workers_metrics_add_up_both_workers_counts():
    with ServiceProcess(WORKERS="2", LOG_LEVEL="WARNING") as service:
        service.wait_healthy(limit=300)
        metrics_dirs = set()
        deadline = time.monotonic() + 240
        while True:  # /health answers once one worker is up; wait for both engines
            page = samples(httpx.get(service.url + "/metrics", timeout=5).text)
            loaded = {  # the supervisor process has this gauge too, at 0
                labels
                for (name, labels), seconds in page.items()
                if name == "ocr_backend_engine_load_seconds" and seconds > 0
            }
            if len(loaded) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for pid in worker_pids(service.pid):
            metrics_dirs.add(environment_of(pid).get("PROMETHEUS_MULTIPROC_DIR"))
        before = value(
            page, "ocr_backend_http_requests_total", method="GET", route="/health", status="200"
        )
        for _ in range(40):  # a new connection each: the kernel spreads them over the workers
            assert httpx.get(service.url + "/health", timeout=5).status_code == 200
        page = samples(httpx.get(service.url + "/metrics", timeout=5).text)
        after = value(
            page, "ocr_backend_http_requests_total", method="GET", route="/health", status="200"
        )
        code = service.stop()
    pids = {dict(labels)["pid"] for labels in loaded}
    assert len(pids) == 2, "both workers' engines show in /metrics"
    assert after - before == 40, "every worker's requests are counted, whichever answers"
    (metrics_dir,) = metrics_dirs
    assert metrics_dir and not Path(metrics_dir).exists(), "the metrics folder is removed"
    assert code == 0
