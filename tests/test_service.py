"""The `ocr-backend` command as a user starts it, and /health as Label Studio calls it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from ocr_backend.api import create_app
from ocr_backend.ocr.local import LocalEngine
from ocr_backend.settings import Settings
from tests.support.asgi import async_client
from tests.support.drawing import draw_page
from tests.support.service import ServiceProcess, console_script


@pytest.mark.slow  # starts the command and waits for the engine
def test_the_command_serves_health_once_the_engine_is_loaded(tmp_path: Path):
    # The console script installed beside this interpreter, as a user runs it.
    with ServiceProcess(console_script(), MODEL_DIR=str(tmp_path)) as service:
        took = service.wait_healthy(limit=90)
        health = httpx.get(f"{service.url}/health").json()
        assert health["status"] == "UP"
        assert health["languages"] == ["en"] and health["device"] == "cpu"
        print(f"ocr-backend healthy {took:.1f} s after start")
        service.terminate()  # SIGTERM
        assert service.wait(timeout=30) == 0
        output = service.output()
        assert "EasyOCR 1.7.2 loaded: languages en on cpu" in output


@pytest.mark.slow  # keeps the engine busy for seconds on purpose
async def test_health_answers_at_once_while_the_engine_is_busy(
    settings: Settings, engine: LocalEngine
):
    app = create_app(settings, engine=engine)
    image, _ = draw_page(["STILL HEALTHY"] * 8, font_size=48)
    async with async_client(app) as (client, _):
        reading = asyncio.ensure_future(engine.read(np.asarray(image)))
        await asyncio.sleep(0.2)  # OCR is now running in the pool
        latencies = []
        while not reading.done():
            started = time.perf_counter()
            response = await client.get("/health")
            latencies.append(time.perf_counter() - started)
            assert response.json()["status"] == "UP"
            await asyncio.sleep(0.05)
        await reading
    assert len(latencies) >= 3
    assert max(latencies) < 0.5  # Label Studio gives /health one second


@pytest.mark.parametrize("path", ["/", "/health"])
def test_index_and_health_answer_json(settings: Settings, client_for, path: str):
    with client_for(settings) as client:
        response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
