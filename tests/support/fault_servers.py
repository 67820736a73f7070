"""Misbehaving image servers on 127.0.0.1: errors, redirect loops, endless bodies, silence."""

from __future__ import annotations

import http.server
import socket
import threading
from urllib.parse import parse_qs, urlsplit


class FaultServer:
    """A real HTTP server whose paths each fail in one way.

    /status/<code>        answers that status
    /loop                 redirects to itself, forever
    /redirect?to=<url>    redirects to <url>
    /endless              an image/png body without length that never ends;
                          `endless_sent` counts the bytes it got out
    """

    CHUNK = 64 * 1024

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.endless_sent = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self):  # noqa: N802 - http.server's naming
                server.paths.append(self.path)
                url = urlsplit(self.path)
                if url.path.startswith("/status/"):
                    self.send_response(int(url.path.rsplit("/", 1)[1]))
                    self.end_headers()
                elif url.path == "/loop":
                    self.redirect("/loop")
                elif url.path == "/redirect":
                    self.redirect(parse_qs(url.query)["to"][0])
                elif url.path == "/endless":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.end_headers()
                    chunk = b"\0" * server.CHUNK
                    try:
                        for _ in range(100_000):  # 6.5 GB if nobody stopped reading
                            self.wfile.write(chunk)
                            server.endless_sent += len(chunk)
                    except OSError:
                        pass  # the client hung up: what the size limit should do
                else:
                    self.send_error(404)

            def redirect(self, location: str) -> None:
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class QuietServer(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        # Polls for shutdown() often: closing takes 0.05 s, not the default 0.5 s.
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class SilentServer:
    """Accepts connections on 127.0.0.1 and never sends a byte: a hung image server."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)  # held open, never answered

    def url(self, path: str = "/image.png") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        for conn in self.accepted:
            conn.close()
        self.sock.close()
