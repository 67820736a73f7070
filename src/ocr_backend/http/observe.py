"""One log line and one set of metrics per request, under a request id.

The id comes from the caller's X-Request-ID when it is a sane token, else
it is made here; it is sent back in X-Request-ID and written in every log
line about the request, so a user's report can be found in the log.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from dataclasses import dataclass, field

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..metrics import REQUEST_SECONDS, REQUESTS

log = logging.getLogger("ocr_backend.requests")

HEADER = "X-Request-ID"
# The methods a metrics label may name; any other is "other". The label was the raw
# method, counted before auth: 3,000 made-up methods grew /metrics from 4 KB to 6.6 MB.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Label Studio polls these; at INFO they would bury the lines that matter.
QUIET_ROUTES = frozenset({"/health", "/metrics"})


@dataclass
class RequestContext:
    """What a route tells the request's log line; set through `current()`."""

    id: str
    # When the request arrived (time.monotonic()): /predict's PREDICT_DEADLINE runs from here.
    started: float = field(default_factory=time.monotonic)
    tasks: int | None = None
    failed: int | None = None
    outcome: str | None = None


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "ocr_backend_request", default=None
)


def current() -> RequestContext:
    """This request's context; a detached one outside a request (direct calls in tests)."""
    return _current.get() or RequestContext(id="-")


def request_id_from(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if SANE_ID.match(text):
                return text
    return uuid.uuid4().hex[:16]


class ObservabilityMiddleware:
    """Request id, log line and metrics; also the last word on an unexpected error."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = RequestContext(id=request_id_from(scope))
        token = _current.set(context)
        started = time.perf_counter()
        status = 500
        header = (HEADER.lower().encode(), context.id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # A bug, not a bad request: log it with the id, answer without the traceback.
            log.exception("request %s: unexpected error", context.id)
            status = 500
            response = JSONResponse(
                {"detail": f"Internal error; the service log has it under request id {context.id}"},
                status_code=500,
            )
            await response(scope, receive, send_with_id)
        finally:
            _current.reset(token)
            self.record(scope, context, status, time.perf_counter() - started)

    @staticmethod
    def record(scope: Scope, context: RequestContext, status: int, took: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        method = scope["method"] if scope["method"] in METHODS else "other"
        REQUESTS.labels(method, route, str(status)).inc()
        REQUEST_SECONDS.labels(method, route, str(status)).observe(took)
        level = logging.DEBUG if route in QUIET_ROUTES and status < 400 else logging.INFO
        if status >= 500:
            level = logging.ERROR
        if not log.isEnabledFor(level):
            return
        # The path as sent, control characters and all: logs.SafeLogFilter escapes them.
        parts = [f"request {context.id}", method, scope.get("path", ""), str(status)]
        if context.tasks is not None:
            parts.append(f"tasks={context.tasks}")
        if context.failed:
            parts.append(f"failed={context.failed}")
        if context.outcome:
            parts.append(context.outcome)
        parts.append(f"{took:.3f}s")
        log.log(level, " ".join(parts))
