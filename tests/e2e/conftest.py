"""Fixtures of the end-to-end tests against a real Label Studio.

One Label Studio per session (its cold start is the dearest step); one
ocr-backend service per configuration a module needs: modules that need the
same one share it (`token_service`), each behind a recording pass-through of
its own. Every process is stopped by its process group at the end, also when
a test fails.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import free_port

from .images import TextImage, draw_text_image
from .labelstudio import (
    LabelStudioApi,
    LabelStudioServer,
    LabelStudioUnavailable,
    create_personal_access_token,
    login_session,
    start_label_studio,
    stock_ocr_config,
)
from .service import Service, start_service

REPO_ROOT = Path(__file__).resolve().parents[2]
# One folder per test process (pytest-xdist names them gw0, gw1, ...): each runs its own
# Label Studio, whose log a test reads back.
ARTIFACTS = (
    REPO_ROOT / "artifacts" / "-".join(filter(None, ("e2e", os.environ.get("PYTEST_XDIST_WORKER"))))
)
HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: end-to-end tests against a real Label Studio")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


# -- timings -------------------------------------------------------------------


class Timings:
    """Seconds each step took, written to artifacts/e2e/timings.json."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.steps: dict[str, float] = {}
        self._session_start = time.monotonic()

    def record(self, step: str, seconds: float) -> None:
        self.steps[step] = round(seconds, 2)
        print(f"[e2e timing] {step}: {seconds:.2f} s")
        self.save()

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.record(name, time.monotonic() - start)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {"steps": self.steps, "session_s": round(time.monotonic() - self._session_start, 2)}
        self.path.write_text(json.dumps(body, indent=2) + "\n")


_TIMINGS: Timings | None = None


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def timings(artifacts: Path) -> Iterator[Timings]:
    global _TIMINGS
    _TIMINGS = Timings(artifacts / "timings.json")
    yield _TIMINGS
    _TIMINGS.save()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _TIMINGS is None or not _TIMINGS.steps:
        return
    terminalreporter.section("e2e timings (s)")
    for step, seconds in _TIMINGS.steps.items():
        terminalreporter.write_line(f"{seconds:8.2f}  {step}")
    terminalreporter.write_line(f"written to {_TIMINGS.path}")


# -- Label Studio ----------------------------------------------------------------


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def label_studio(work_dir: Path, artifacts: Path, timings: Timings) -> Iterator[LabelStudioServer]:
    try:
        server = start_label_studio(work_dir, artifacts / "label-studio.log")
    except LabelStudioUnavailable as reason:
        pytest.skip(str(reason))
    timings.record("label studio start (to /health)", server.startup_s)
    try:
        yield server
    finally:
        server.process.stop()


@pytest.fixture(scope="session")
def ls_session(label_studio: LabelStudioServer, timings: Timings):
    """A browser-like cookie session, logged in through the login form."""
    with timings.step("log in through /user/login/"):
        session = login_session(label_studio.url, label_studio.email, label_studio.password)
    yield session
    session.close()


@pytest.fixture(scope="session")
def personal_access_token(ls_session, timings: Timings) -> str:
    with timings.step("create personal access token"):
        return create_personal_access_token(ls_session)


@pytest.fixture(scope="session")
def ls_api(label_studio: LabelStudioServer, personal_access_token: str) -> Iterator[LabelStudioApi]:
    api = LabelStudioApi(label_studio.url, personal_access_token)
    yield api
    api.close()


@pytest.fixture(scope="session")
def ocr_config(label_studio: LabelStudioServer) -> str:
    return stock_ocr_config()


# -- images ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def images(artifacts: Path) -> dict[str, TextImage]:
    drawn = {
        "upload_two_lines": draw_text_image("upload_two_lines.png", "HELLO WORLD", "INVOICE 2024"),
        "upload_one_line": draw_text_image("upload_one_line.png", "QUICK BROWN FOX"),
        "url": draw_text_image("url_task.png", "OPEN SOURCE"),
        "data_uri": draw_text_image("data_uri.png", "PAYMENT 512"),
    }
    for image in drawn.values():
        (artifacts / "images").mkdir(exist_ok=True)
        (artifacts / "images" / image.name).write_bytes(image.png)
    return drawn


@pytest.fixture(scope="session")
def image_server(work_dir: Path, images: dict[str, TextImage]) -> Iterator[str]:
    """A plain HTTP server on 127.0.0.1 serving the test images; yields its base URL."""
    root = work_dir / "served-images"
    root.mkdir(exist_ok=True)
    for image in images.values():
        (root / image.name).write_bytes(image.png)

    class QuietHandler(SimpleHTTPRequestHandler):
        def end_headers(self) -> None:
            # The labeling UI loads task images with crossorigin="anonymous":
            # like any real image host, this one must allow it.
            self.send_header("Access-Control-Allow-Origin", "*")
            super().end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(
        ("127.0.0.1", free_port()), partial(QuietHandler, directory=str(root))
    )
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# -- the service ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def service_factory(artifacts: Path, timings: Timings) -> Iterator[Callable[..., Service]]:
    """Starts ocr-backend services; whatever a module did not stop is stopped here."""
    started: list[Service] = []

    def start(name: str, **settings: str) -> Service:
        service = start_service(name, settings, artifacts)
        started.append(service)
        timings.record(f"service start ({name}, to /health UP)", service.startup_s)
        return service

    try:
        yield start
    finally:
        for service in started:
            service.stop()


@pytest.fixture(scope="session")
def token_service(
    service_factory: Callable[..., Service],
    label_studio: LabelStudioServer,
    personal_access_token: str,
) -> Service:
    """The service with LABEL_STUDIO_HOST and a personal access token, as most users run it.

    Started once for every module that needs exactly this (each start loads
    EasyOCR again, 10 to 20 s on CI); a module sees it through a pass-through of
    its own (`Service.recorded_as`), so what it checks of the calls is its own.
    service_factory stops it at the end of the session.
    """
    return service_factory(
        "with-token",
        LABEL_STUDIO_HOST=label_studio.url,
        LABEL_STUDIO_ACCESS_TOKEN=personal_access_token,
    )
