"""The `ocr-backend` command as a user starts it, and /health as Label Studio calls it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import free_port
from drawing import draw_page

from ocr_backend.api import create_app
from ocr_backend.engine import OcrEngine
from ocr_backend.settings import Settings
from tests.support.asgi import async_client


def wait_healthy(url: str, process: subprocess.Popen, limit: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if process.poll() is not None:
            raise AssertionError(f"ocr-backend exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).json().get("status") == "UP":
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"no healthy {url} within {limit} s")


def test_the_command_serves_health_once_the_engine_is_loaded(tmp_path: Path):
    port = free_port()
    env = {
        **os.environ,
        "LANG_LIST": "en",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MODEL_DIR": str(tmp_path),
        "MODEL_DOWNLOAD": "false",
        "DEVICE": "cpu",
    }
    # The console script installed beside this interpreter, as a user runs it.
    command = str(Path(sys.executable).parent / "ocr-backend")
    process = subprocess.Popen(
        [command], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        took = wait_healthy(f"http://127.0.0.1:{port}/health", process, limit=90)
        health = httpx.get(f"http://127.0.0.1:{port}/health").json()
        assert health["status"] == "UP"
        assert health["languages"] == ["en"] and health["device"] == "cpu"
        print(f"ocr-backend healthy {took:.1f} s after start")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        output = process.stdout.read()
        assert "EasyOCR 1.7.2 loaded: languages en on cpu" in output
    finally:
        if process.poll() is None:
            process.kill()


async def test_health_answers_at_once_while_the_engine_is_busy(
    settings: Settings, engine: OcrEngine
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
def test_index_and_health_answer_json(settings: Settings, engine: OcrEngine, path: str):
    from fastapi.testclient import TestClient

    with TestClient(create_app(settings, engine=engine)) as client:
        response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
