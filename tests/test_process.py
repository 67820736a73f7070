"""The real service as a process: under load, on SIGTERM, and with WORKERS=2.

Everything goes to 127.0.0.1. The load test is the short form of `python -m bench.load`.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from pathlib import Path

import httpx
import pytest

from tests.support.drawing import draw_page
from tests.support.load import measure, predict_body
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


def slow_body(tasks: int = 4, lines: int = 3) -> dict:
    page, _ = draw_page(["SIGTERM WAITS FOR ME"] * lines, font_size=40)
    buffer = io.BytesIO()
    page.save(buffer, "PNG")
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    body = predict_body(1)
    body["tasks"] = [{"id": i, "data": {"ocr": uri}} for i in range(1, tasks + 1)]
    return body


def test_sigterm_answers_at_once_finishes_images_in_flight_and_the_rest_resumes(tmp_path):
    """A stop halfway through a bulk /predict: nothing is lost, nothing is read twice.

    The waiting /predict answers at once with what is read (the rest `pending`),
    the image at the engine is finished, and what is still queued on disk is
    read at the next start.
    """
    home = {"MODEL_DIR": str(tmp_path), "PREDICT_DEADLINE": "120"}
    body = slow_body()
    body["project"] = "3.1763892800"
    with ServiceProcess(**home) as service:
        service.wait_healthy()

        async def scenario() -> httpx.Response:
            async with httpx.AsyncClient(base_url=service.url, timeout=120) as client:
                slow = asyncio.ensure_future(client.post("/predict", json=body))
                for _ in range(2400):  # up to 120 s, until the first image is being read
                    jobs = (await client.get("/jobs")).json()["jobs"]
                    if jobs and jobs[0]["reading"]:
                        break
                    await asyncio.sleep(0.05)
                service.terminate()  # SIGTERM
                return await slow

        started = time.perf_counter()
        response = asyncio.run(scenario())
        answered_in = time.perf_counter() - started
        code = service.wait(timeout=60)
        stopped_in = time.perf_counter() - started
        output = service.output()
    assert response.status_code == 200, output
    results = response.json()["results"]
    assert len(results) == 4
    read = [r for r in results if "result" in r]
    assert all(r["result"] for r in read)
    left = [r for r in results if "result" not in r]
    assert left and all(r["status"] == "pending" for r in left), results
    assert answered_in < 30  # not the 120 s deadline: the stop answered it
    assert code == 0, output
    assert stopped_in < answered_in + 45  # one image's reading, on a busy machine
    with ServiceProcess(**home) as again:  # the rest is read at the next start
        again.wait_healthy()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            (job,) = httpx.get(again.url + "/jobs", timeout=5).json()["jobs"]
            if not job["active"]:
                break
            time.sleep(0.5)
        assert again.stop() == 0
    assert job["answered"] == len(read) and job["done_waiting"] == len(left), job
    assert job["failed"] == 0


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
