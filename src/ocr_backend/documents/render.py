"""The rendering process: PDFs -> page PNG files, one PDF at a time, under a memory cap.

`python -m ocr_backend.documents.render --memory BYTES` caps its own address
space, then reads one request per line on stdin (JSON: a PDF, the folder for
its pages, the DPI and the caps) and answers with JSON lines on stdout:
`{"pages": n}` once the PDF is open, `{"page": k, "bytes": size}` as each
page's PNG is written, then `{"done": true}` or `{"error": message}`.

A PDF is rendered here, not in the command's process, because PDFium itself
can be made to take memory without bound: a 728-byte PDF whose form draws
itself twice took 18.7 GB in 60 s. Under the cap PDFium's allocation fails
and this process dies (or Python raises MemoryError); the command
(documents/renderer.py) names the PDF, starts a new process and goes on.
Nothing else of the run is lost. Knows nothing of OCR or Label Studio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from pathlib import Path
from typing import Any, TextIO

from ..errors import DocumentError
from .pdf import PdfFile

PAGE_FORMAT = "page-{number:04d}.png"
PARTIAL_SUFFIX = ".partial"  # a page being written; renamed when whole


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory", type=int, required=True, help="address space cap, bytes")
    args = parser.parse_args(argv)
    _cap_memory(args.memory)
    # The answers go to the real stdout alone: whatever a library prints goes to stderr.
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            render_pdf(request, answers)
        except MemoryError:
            _say(answers, error=_out_of_memory(request))
            return 1  # a failed allocation may leave PDFium in any state: start afresh
        except DocumentError as exc:
            _say(answers, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - one PDF's failure, whatever the library raised
            _say(answers, error=f"{request['pdf']}: {type(exc).__name__}: {exc}")
    return 0


def render_pdf(request: dict[str, Any], answers: TextIO) -> None:
    """Every page of the requested PDF written as a PNG, each announced as it is written."""
    path, folder = Path(request["pdf"]), Path(request["folder"])
    budget: int = request["max_bytes"]  # what the run may still write
    with PdfFile(path) as pdf:
        count = len(pdf)
        if count > request["max_pages"]:
            raise DocumentError(
                f"{path} has {count} pages, more than --max-pages={request['max_pages']}: "
                "split it, or raise --max-pages"
            )
        _say(answers, pages=count)
        written = 0
        for index in range(count):
            image = pdf.render(index, request["dpi"], max_pixels=request["max_pixels"])
            file = folder / PAGE_FORMAT.format(number=index + 1)
            partial = file.with_name(file.name + PARTIAL_SUFFIX)
            try:
                image.save(partial, format="PNG")
                size = partial.stat().st_size
                if written + size > budget:
                    raise DocumentError(
                        f"{path} page {index + 1}: the run's page images would pass "
                        f"--max-output={request['max_output']}; this PDF is left out, its "
                        "pages removed. Raise --max-output, or convert fewer PDFs at once"
                    )
                os.replace(partial, file)
            except OSError as exc:  # e.g. the disk full
                raise DocumentError(
                    f"{path} page {index + 1} cannot be written to {folder} ({exc.strerror or exc})"
                ) from None
            finally:
                partial.unlink(missing_ok=True)
            written += size
            _say(answers, page=index + 1, bytes=size)
    _say(answers, done=True)


def _say(answers: TextIO, **answer: Any) -> None:
    answers.write(json.dumps(answer) + "\n")
    answers.flush()


def _cap_memory(limit: int) -> None:
    """Cap this process's address space (never above a cap it already has)."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _out_of_memory(request: dict[str, Any]) -> str:
    return (
        f"{request['pdf']}: rendering ran out of its memory cap (--render-memory="
        f"{request['render_memory']}): the PDF is damaged or hostile (a form that draws itself?), "
        "or its pages are very large; lower --dpi or raise --render-memory"
    )


if __name__ == "__main__":
    sys.exit(main())
