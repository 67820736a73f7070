"""The command's side of the rendering process: one PDF's pages, or why it failed.

The process (documents/render.py) is started once and given one PDF after
another; it is started again only after it dies. Each PDF is bounded three
ways, each failure naming the PDF and the page:

- memory: the process's address space is capped (`--render-memory`);
  PDFium failing an allocation under the cap kills the process;
- time: each page must be written within `--page-timeout` seconds, or the
  process is killed (a page that loops, or a FIFO swapped in after the check);
- size: at most `--max-pages` pages a PDF, and at most `--max-output` bytes of
  page images in the whole run.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import sys
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import DocumentError

KiB = 1024
GiB = 1 << 30
_UNITS = {"": 1, "K": KiB, "M": KiB**2, "G": KiB**3, "T": KiB**4}
ANSWER_LIMIT = 1 << 20  # bytes of one answer line (an error message quoting a library)
STDERR_KEPT = 4096
# The folder holding this package, first on the rendering process's path: it runs this code.
PACKAGE_ROOT = str(
    Path(__file__).resolve().parents[2]
)  # the end of what the process wrote to stderr, to say why it died


@dataclass(frozen=True)
class RenderLimits:
    """The caps on rendering one run's PDFs."""

    max_pages: int = 1000  # per PDF
    max_output: int = 10 * GiB  # bytes of page images, the whole run
    memory: int = 2 * GiB  # the rendering process's address space
    page_timeout: float = 60.0  # seconds to render and write one page


@dataclass(frozen=True)
class RenderedPage:
    number: int  # from 1
    file: Path
    size: int  # bytes


def parse_size(text: str) -> int:
    """`200K`, `1.5G`, `500M`, `4096` -> bytes (binary units, as `ls -h` and `du -h` count)."""
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = value[-1:] if value[-1:] in _UNITS else ""
    number = float(value[: len(value) - len(unit)])
    if not number > 0:
        raise ValueError(f"{text!r} is not a size above 0")
    return int(number * _UNITS[unit])


def format_size(size: int) -> str:
    """Bytes in the largest unit that says them exactly: 204800 -> `200K`."""
    for unit in ("T", "G", "M", "K"):
        if size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return str(size)


class Renderer:
    """Renders PDFs into page files in the rendering process, restarting it when it dies."""

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self._process: asyncio.subprocess.Process | None = None
        self._stderr: collections.deque[bytes] = collections.deque(maxlen=64)
        self._drain: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Renderer:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def pages(
        self,
        pdf: Path,
        folder: Path,
        *,
        dpi: float,
        max_pixels: int,
        budget: int,
        on_count: Callable[[int], None] = lambda count: None,
    ) -> AsyncGenerator[RenderedPage, None]:
        """Each page as its file is written; DocumentError when the PDF fails.

        `budget` is what the run may still write. Stopping early (the caller
        raised) stops the process too: it may be midway through the PDF.
        """
        process = await self._started()
        request = {
            "pdf": str(pdf), "folder": str(folder), "dpi": dpi, "max_pixels": max_pixels,
            "max_pages": self.limits.max_pages, "max_bytes": budget,
            "max_output": format_size(self.limits.max_output),
            "render_memory": format_size(self.limits.memory),
        }  # fmt: skip
        assert process.stdin is not None
        finished = False
        waiting_for = 1  # the page the process is on
        try:
            process.stdin.write(json.dumps(request).encode() + b"\n")
            await process.stdin.drain()
            while True:
                answer = await self._answer(process, pdf, waiting_for)
                if "pages" in answer:
                    on_count(answer["pages"])
                elif "page" in answer:
                    waiting_for = answer["page"] + 1
                    file = folder / f"page-{answer['page']:04d}.png"
                    yield RenderedPage(answer["page"], file, answer["bytes"])
                elif "error" in answer:
                    finished = True
                    raise DocumentError(answer["error"])
                else:
                    finished = True
                    return
        except (BrokenPipeError, ConnectionResetError):
            raise DocumentError(await self._died(pdf, waiting_for)) from None
        finally:
            if not finished:
                await self._stop()

    async def _answer(
        self, process: asyncio.subprocess.Process, pdf: Path, page: int
    ) -> dict[str, Any]:
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), self.limits.page_timeout)
        except TimeoutError:
            await self._stop()
            raise DocumentError(
                f"{pdf} page {page} took more than --page-timeout={self.limits.page_timeout:g} s "
                "to render: the PDF is damaged or hostile, or the page very complex; raise "
                "--page-timeout if it is only slow"
            ) from None
        if not line:
            raise DocumentError(await self._died(pdf, page))
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def _died(self, pdf: Path, page: int) -> str:
        """Why the process ended: its exit, and the last line it wrote to stderr."""
        assert self._process is not None
        status = await self._process.wait()
        if self._drain is not None:
            await self._drain
        self._process = None
        if status < 0:
            how = f"was killed by {signal.Signals(-status).name}"
        else:
            how = f"exited with status {status}"
        said = b"".join(self._stderr).decode(errors="replace").strip().splitlines()
        last = f" ({said[-1].strip()})" if said else ""
        return (
            f"{pdf} page {page}: the rendering process died: it {how}{last}, most likely out of "
            f"its memory cap (--render-memory={format_size(self.limits.memory)}). The PDF is "
            "damaged or hostile (a form that draws itself?), or its pages are very large: lower "
            "--dpi or raise --render-memory"
        )

    async def _started(self) -> asyncio.subprocess.Process:
        if self._process is not None and self._process.returncode is None:
            return self._process
        path = os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))
        self._stderr.clear()
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ocr_backend.documents.render",
            "--memory", str(self.limits.memory),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": path},
            limit=ANSWER_LIMIT,
        )  # fmt: skip
        self._drain = asyncio.ensure_future(self._keep_stderr(self._process))
        return self._process

    async def _keep_stderr(self, process: asyncio.subprocess.Process) -> None:
        """Read the process's stderr as it comes, keeping only its end."""
        assert process.stderr is not None
        while chunk := await process.stderr.read(STDERR_KEPT):
            self._stderr.append(chunk)
            while sum(map(len, self._stderr)) > STDERR_KEPT and len(self._stderr) > 1:
                self._stderr.popleft()

    async def _stop(self) -> None:
        """Kill the process (it is midway through a PDF, or hung); the next PDF starts another."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            process.kill()
        await process.wait()
        if self._drain is not None:
            await self._drain

    async def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None and process.stdin is not None:
            process.stdin.close()  # the process ends at the end of its requests
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
        await process.wait()
        if self._drain is not None:
            await self._drain
