"""The service's log lines: stderr, one line each, no control character, no query string.

A leaf module (no metrics, no FastAPI): `ocr-backend serve` configures the log
before prometheus-client may be imported.
"""

from __future__ import annotations

import logging
import re
import sys

# C0 and C1 control characters, DEL and the Unicode line separators: each would let a
# request's text (a task data key, a path with %0A) start a forged log line.
_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))} | {
    0x0A: "\\n",
    0x0D: "\\r",
    0x09: "\\t",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}
# A query string in a URL: a presigned URL's signature is a credential, and httpx logs
# every URL it fetches at INFO.
_QUERY = re.compile(r"(?<=[^\s?])\?[^\s\"'<>]+")


def escape_controls(text: str) -> str:
    return text.translate(_CONTROLS)


def redact_queries(text: str) -> str:
    return _QUERY.sub("?...", text)


class SafeLogFilter(logging.Filter):
    """Every log line on one line, with no query string: installed on the log handlers.

    Tracebacks (exc_info) keep their lines: they come from the code, not the request.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        safe = escape_controls(redact_queries(message))
        if safe != message:
            record.msg, record.args = safe, None
        return True


def configure_logging(level: str) -> None:
    """The service's log: stderr, one line per record, no control character, no query string.

    Called by `ocr-backend serve`, and by each worker process with WORKERS > 1.
    """
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, SafeLogFilter) for f in handler.filters):
            handler.addFilter(SafeLogFilter())
