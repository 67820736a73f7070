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
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


def render_results(results: Sequence[Any]) -> bytes:
    """`{"results": [...]}` as JSONResponse renders it, one entry at a time.

    Run in a worker thread: one json.dumps of 500,000 entries holds the GIL, and so
    the event loop, for seconds. An entry given many times (`pending` ones are one
    object) is rendered once.
    """
    rendered: dict[int, bytes] = {}
    parts = []
    for entry in results:
        text = rendered.get(id(entry))
        if text is None:
            text = json.dumps(
                entry, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
            ).encode("utf-8")
            rendered[id(entry)] = text
        parts.append(text)
    if not parts:
        return b'{"results":[]}'
    parts[0] = b'{"results":[' + parts[0]  # one copy of the body, not two (115 MB here)
    parts[-1] = parts[-1] + b"]}"
    return b",".join(parts)


class ConfirmedAnswer(Response):
    """JSON that calls `sent` once its body went out, or `not_sent` if it could not."""

    media_type = "application/json"

    def __init__(
        self,
        body: bytes,
        *,
        sent: Callable[[], Awaitable[None]],
        not_sent: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(body)
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
