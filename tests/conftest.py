"""Fixtures every test may use: a clean environment, one real EasyOCR engine, app clients.

The helpers behind them live in tests/support/.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ocr_backend.ocr.local import LocalEngine
from ocr_backend.settings import Settings
from tests.support.asgi import app_client
from tests.support.environment import service_variables
from tests.support.image_server import ImageServer
from tests.support.ray_cluster import prepare_environment

# Ray reads its variables when it is first imported, by whichever test comes first:
# without them it listens on the machine's outward address, not on loopback only.
prepare_environment()

ClientFor = Callable[..., AbstractContextManager[TestClient]]


def delete_service_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset every variable the service reads; PATH, HOME, PYTHONPATH and the rest stay."""
    names = service_variables()
    for name in list(os.environ):
        if name.upper() in names:
            monkeypatch.delenv(name)


@pytest.fixture(scope="session", autouse=True)
def clean_session_service_environment() -> Iterator[None]:
    """The session's fixtures (settings, engine) are made without the shell's variables."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        delete_service_variables(monkeypatch)
        yield


@pytest.fixture(autouse=True)
def clean_service_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No variable the service reads reaches a test: not from the shell that started
    pytest, nor from an earlier test that set one. A test sets what it needs itself."""
    delete_service_variables(monkeypatch)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MODEL_DIR: the English weights must come from the bundled package."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def settings(model_dir: Path) -> Settings:
    return Settings(lang_list="en", model_dir=model_dir, device="cpu", model_download=False)


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[LocalEngine]:
    ocr = LocalEngine.load(settings)
    yield ocr
    ocr.close()


@pytest.fixture(scope="session")
def client_for(engine: LocalEngine) -> ClientFor:
    """Opens a client of the app on the session's engine: `with client_for(settings, **changes)`.

    Also takes `raise_server_exceptions=False` (see tests.support.asgi.app_client).
    """
    return partial(app_client, engine=engine)


@pytest.fixture(scope="module")
def client(settings: Settings, client_for: ClientFor) -> Iterator[TestClient]:
    """One client of the app with the test settings, shared by a module's tests."""
    with client_for(settings) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def image_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImageServer]:
    server = ImageServer(tmp_path_factory.mktemp("served"))
    yield server
    server.close()
