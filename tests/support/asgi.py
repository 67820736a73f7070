"""Clients of the app in this process, with its lifespan run and its typed state at hand."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from ocr_backend.api import create_app
from ocr_backend.http.lifespan import STATE_KEY, Services
from ocr_backend.ocr.local import LocalEngine
from ocr_backend.settings import Settings
from tests.support.settings import changed


@contextmanager
def app_client(
    settings: Settings,
    engine: LocalEngine,
    *,
    raise_server_exceptions: bool = True,
    **changes: Any,
) -> Iterator[TestClient]:
    """A TestClient of the app made from `settings` (with `changes`) and `engine`.

    Opened with `with`, so the lifespan runs: the app's services are up until
    the block ends. `raise_server_exceptions=False` answers an unhandled error
    with a 500, as a server would, instead of raising it in the test.
    """
    app = create_app(changed(settings, **changes) if changes else settings, engine=engine)
    with TestClient(app, raise_server_exceptions=raise_server_exceptions) as client:
        yield client


@asynccontextmanager
async def async_client(app) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    """An httpx client of `app` on the test's own event loop, and the app's services.

    httpx's ASGITransport does not run the lifespan, so this runs it and hands
    each request the lifespan's state, as a server would.
    """
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            scope["state"] = dict(state)
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, state[STATE_KEY]


def services_of(client) -> Services:
    """The services behind a FastAPI TestClient opened with `with`."""
    return client.app_state[STATE_KEY]
