"""A /predict answer whose results count as delivered only once it is sent whole.

Label Studio (or a proxy in front of the service) may give up on a /predict
before PREDICT_DEADLINE: its connection is closed, and an answer sent then
reaches no one. Results claimed for such an answer must not be marked
delivered, or they are never written. So the answer first asks whether the
client is still there, then sends, then confirms; a client gone gives the
results back to the background writer at once. A process that dies between
claim and confirmation leaves them `answering`, which the writer later treats
as unsure: checked against Label Studio, then written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send


class ConfirmedAnswer(JSONResponse):
    """JSON that calls `sent` once its body went out, or `not_sent` if it could not."""

    def __init__(
        self,
        content: Any,
        *,
        sent: Callable[[], Awaitable[None]],
        not_sent: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(content)
        self._sent = sent
        self._not_sent = not_sent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await Request(scope, receive).is_disconnected():
            await asyncio.shield(self._not_sent())
            return
        try:
            await super().__call__(scope, receive, send)
        except BaseException:
            await asyncio.shield(self._not_sent())
            raise
        await asyncio.shield(self._sent())
