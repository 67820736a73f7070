"""The bounded queue of interactive requests: full, it answers 503 with Retry-After.

Bulk /predict requests wait on disk instead (tests/test_jobs.py); what
someone waits for on screen is what must not pile up in memory.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from ocr_backend.api import create_app
from ocr_backend.errors import QueueFull, TooManyTasks
from ocr_backend.http.admission import AdmissionQueue
from tests.support.asgi import async_client
from tests.support.drawing import draw_page
from tests.support.label_studio import OCR_TEMPLATE, drawn_rectangle
from tests.support.settings import changed


def test_requests_are_admitted_whole_up_to_the_limit_and_released():
    queue = AdmissionQueue(5, seconds_per_image=lambda: 2.0, threads=1)
    with queue.admit(3):
        with queue.admit(2):
            assert queue.waiting == 5
            with pytest.raises(QueueFull) as full:
                with queue.admit(1):
                    pass
            assert full.value.retry_after == 10  # 5 images at 2 s each, one thread
            assert str(full.value) == (
                "The OCR queue is full (5 of MAX_QUEUE=5 images waiting); retry in 10 s"
            )
        with pytest.raises(QueueFull):
            with queue.admit(3):  # 2 would fit, 3 do not: no partial admission
                pass
    assert queue.waiting == 0
    with pytest.raises(TooManyTasks, match="This request has 6 tasks, more than MAX_QUEUE=5"):
        with queue.admit(6):
            pass


def test_retry_after_stays_between_1_and_60_seconds():
    fast = AdmissionQueue(10, seconds_per_image=lambda: 0.01, threads=4)
    slow = AdmissionQueue(1000, seconds_per_image=lambda: 30.0, threads=1)
    with fast.admit(1), slow.admit(1000):
        assert fast.retry_after() == 1
        assert slow.retry_after() == 60


@pytest.mark.slow  # reads a six-line page twice while it probes
async def test_a_full_queue_answers_503_at_once_while_health_stays_quick(
    settings, engine, image_server
):
    page = draw_page(["QUEUE FULL"] * 6, font_size=40)[0]
    url = image_server.put("queue.png", page)
    app = create_app(changed(settings, max_queue=2), engine=engine)
    width, height = page.size
    # The user drew a box around the whole page: interactive pre-annotation.
    drawn = drawn_rectangle((0, 0, width, height), page.size, region_id="box")

    def body(tasks: int) -> dict:
        data = [{"id": i, "data": {"ocr": url}} for i in range(tasks)]
        return {
            "tasks": data,
            "label_config": OCR_TEMPLATE,
            "params": {"context": {"result": [drawn]}},
        }

    async with async_client(app) as (client, services):
        slow = asyncio.ensure_future(client.post("/predict", json=body(2), timeout=120))
        while services.admission.waiting < 2:  # noqa: ASYNC110 - polls the app's state
            await asyncio.sleep(0.01)
        started = time.perf_counter()
        refused = await client.post("/predict", json=body(1))
        refused_in = time.perf_counter() - started
        too_big = await client.post("/predict", json=body(3))
        health = []
        while not slow.done():
            started = time.perf_counter()
            assert (await client.get("/health")).status_code == 200
            health.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)
        admitted = await slow
        after = await client.post("/predict", json=body(1), timeout=120)
    assert refused.status_code == 503
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["detail"].startswith(
        "The OCR queue is full (2 of MAX_QUEUE=2 images waiting); retry in"
    )
    assert refused_in < 0.5  # answered before any work
    assert too_big.status_code == 413
    assert "more than MAX_QUEUE=2" in too_big.json()["detail"]
    assert admitted.status_code == 200 and len(admitted.json()["results"]) == 2
    assert after.status_code == 200  # the queue drained
    assert health and max(health) < 0.5
