"""The ocr-backend service under test, and a recorder of what Label Studio sends it.

Label Studio is connected to the service through `RecordingProxy`, a plain
pass-through on 127.0.0.1 that keeps every request and answer, so the tests
can check (and a person can read, in artifacts/e2e/) exactly what Label
Studio sent and what it got back.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import LOOPBACK_ONLY_ENV, free_port
from tests.support.service import ServiceProcess

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "content-encoding",
}


def service_python() -> str:
    """The interpreter that runs the service: the test runner's own, as in CI."""
    return os.environ.get("OCR_BACKEND_E2E_PYTHON") or sys.executable


@dataclass
class Exchange:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int
    answer: Any
    seconds: float

    def as_record(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "body": _shorten(self.body),
            "status": self.status,
            "answer": _shorten(self.answer),
            "seconds": round(self.seconds, 3),
        }


def _shorten(value: Any, limit: int = 300) -> Any:
    """Long strings (data: URIs, label configs) cut for the record."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + f"...<{len(value)} chars>"
    if isinstance(value, dict):
        return {key: _shorten(item, limit) for key, item in value.items()}
    if isinstance(value, list):
        return [_shorten(item, limit) for item in value]
    return value


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw[:500].decode("utf-8", "replace")


class RecordingProxy:
    def __init__(self, target: str, record_path: Path) -> None:
        self.target = target
        self.record_path = record_path
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._closed = False
        self._client = httpx.Client(base_url=target, trust_env=False, timeout=httpx.Timeout(150.0))
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                start = time.monotonic()
                try:
                    response = proxy._client.request(
                        self.command, self.path, content=raw, headers=headers
                    )
                    status, content = response.status_code, response.content
                    answer_headers = {
                        k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP
                    }
                except httpx.HTTPError as error:
                    status, content = 502, json.dumps({"proxy_error": repr(error)}).encode()
                    answer_headers = {"content-type": "application/json"}
                proxy._record(
                    Exchange(
                        method=self.command,
                        path=self.path,
                        headers=dict(self.headers.items()),
                        body=_parse(raw),
                        status=status,
                        answer=_parse(content),
                        seconds=time.monotonic() - start,
                    )
                )
                self.send_response(status)
                for key, value in answer_headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _record(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)
            self.record_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.record_path, "a") as out:
                out.write(json.dumps(exchange.as_record()) + "\n")

    def calls(self, path_prefix: str) -> list[Exchange]:
        with self._lock:
            return [
                e
                for e in self.exchanges
                if e.path.split("?")[0].rstrip("/") == path_prefix.rstrip("/")
            ]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._client.close()


@dataclass
class Service:
    name: str
    url: str  # the service itself
    process: ServiceProcess
    proxy: RecordingProxy
    startup_s: float
    env: dict[str, str] = field(default_factory=dict)
    # False for a view of another Service's process: stopping it closes its proxy only.
    owns_process: bool = True

    @property
    def url_for_label_studio(self) -> str:
        """What Label Studio is told to connect to: the recording pass-through."""
        return self.proxy.url

    def recorded_as(self, name: str, log_dir: Path) -> Service:
        """The same process behind a recording pass-through of its own, named `name`.

        Modules that need the service started with the same settings share one
        process (each start loads EasyOCR again); each still sees only what Label
        Studio sent it, in `label-studio-to-<name>.jsonl`.
        """
        proxy = RecordingProxy(self.url, log_dir / f"label-studio-to-{name}.jsonl")
        return Service(
            name=name,
            url=self.url,
            process=self.process,
            proxy=proxy,
            startup_s=0.0,
            env=self.env,
            owns_process=False,
        )

    def stop(self) -> None:
        self.proxy.close()
        if self.owns_process:
            self.process.stop()


def start_service(
    name: str, settings: dict[str, str], log_dir: Path, timeout_s: float = 300
) -> Service:
    """Start `python -m ocr_backend` with these settings; wait until /health says UP.

    Its HTTP clients can reach only this machine (LOOPBACK_ONLY_ENV); no
    variable of the service comes from the shell that runs the tests.
    """
    auth = (
        (settings["BASIC_AUTH_USER"], settings["BASIC_AUTH_PASS"])
        if "BASIC_AUTH_USER" in settings
        else None
    )
    start = time.monotonic()
    process = ServiceProcess(
        [service_python(), "-m", "ocr_backend"],
        name=f"ocr-backend ({name})",
        log_path=log_dir / f"service-{name}.log",
        auth=auth,
        **{**LOOPBACK_ONLY_ENV, **settings},
    )
    try:
        process.wait_healthy(timeout_s)
    except BaseException:
        process.stop()
        raise
    proxy = RecordingProxy(process.url, log_dir / f"label-studio-to-{name}.jsonl")
    return Service(
        name=name,
        url=process.url,
        process=process,
        proxy=proxy,
        startup_s=time.monotonic() - start,
        env={k: v for k, v in settings.items() if "PASS" not in k and "TOKEN" not in k},
    )
