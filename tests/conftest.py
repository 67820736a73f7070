"""Shared fixtures: one real EasyOCR engine for the whole session (loading costs seconds)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ocr_backend.engine import OcrEngine  # noqa: E402
from ocr_backend.settings import Settings  # noqa: E402


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MODEL_DIR: the English weights must come from the bundled package."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def settings(model_dir: Path) -> Settings:
    return Settings(lang_list="en", model_dir=model_dir, device="cpu", model_download=False)


def changed(settings: Settings, **changes) -> Settings:
    """The same settings with some changed, validated as the environment would be."""
    return Settings(**{**settings.model_dump(), **changes})


@pytest.fixture(scope="session")
def engine(settings: Settings):
    ocr = OcrEngine.load(settings)
    yield ocr
    ocr.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ImageServer:
    """A real HTTP server on 127.0.0.1 serving files from a folder, and counting requests."""

    def __init__(self, root: Path) -> None:
        import http.server
        import threading

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
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
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


@pytest.fixture(scope="session")
def image_server(tmp_path_factory: pytest.TempPathFactory):
    server = ImageServer(tmp_path_factory.mktemp("served"))
    yield server
    server.close()


OCR_TEMPLATE = """<View>
  <Image name="image" value="$ocr"/>
  <Labels name="label" toName="image">
    <Label value="Text" background="green"/>
    <Label value="Handwriting" background="blue"/>
  </Labels>
  <Rectangle name="bbox" toName="image" strokeWidth="3"/>
  <Polygon name="poly" toName="image" strokeWidth="3"/>
  <TextArea name="transcription" toName="image"
            editable="true"
            perRegion="true"
            required="true"
            maxSubmissions="1"
            rows="5"
            placeholder="Recognized Text"
            displayMode="region-list"
            />
</View>
"""
"""Label Studio's stock template: Computer Vision > Optical Character Recognition."""
