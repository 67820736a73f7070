"""Clients of the app in this process, with its lifespan run and its typed state at hand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.types import Receive, Scope, Send

from ocr_backend.http.lifespan import STATE_KEY, Services


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
