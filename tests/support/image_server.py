"""A real HTTP server on 127.0.0.1 that serves test images from a folder."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

# How often serve_forever looks for shutdown(): the default half second would be
# waited out by every test that closes a server.
SHUTDOWN_POLL_S = 0.05


class ImageServer:
    """A real HTTP server on 127.0.0.1 serving files from a folder, and counting requests."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):  # noqa: N802 - http.server's naming
                server.requests.append((self.path, dict(self.headers)))
                super().do_GET()

            def log_message(self, *args):
                pass

        class QuietServer(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client that stops reading mid-download (size limit) is expected

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, args=(SHUTDOWN_POLL_S,), daemon=True
        )
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def put(self, name: str, image, **save_options) -> str:
        """Save a Pillow image under `name` and return its URL."""
        image.save(self.root / name, **save_options)
        return self.url(name)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
