"""`ocr-backend pdf-to-tasks` on hostile files: each fails alone, and nothing else is lost.

Each hostile PDF is written byte by byte (tests/support/pdfs.py) and given
beside a good one: the good PDF's task must be written, the hostile one
refused with its reason, and nothing outside the hostile PDF's own pages
touched. Where a regression could take the machine's memory or file
descriptors, the command runs in its own process under caps of its own;
elsewhere in this process (the command's start-up costs seconds).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ocr_backend.__main__ import main
from tests.support.pdfs import many_pages, page_tree_listing_itself, self_drawing_form

pytestmark = pytest.mark.slow  # the command as a process, with a rendering process of its own

SRC = Path(__file__).resolve().parents[1] / "src"
GiB = 1 << 30
# The command and everything it starts may map at most this much: far under the
# machine's memory, above what a good run needs (with one BLAS thread: OpenBLAS maps
# buffers for each thread it starts, one per core, as torch is imported).
COMMAND_MEMORY = 6 * GiB


def run(
    *args: str | Path, timeout: float = 120, open_files: int | None = None
) -> subprocess.CompletedProcess[str]:
    """The command in its own process, its address space (and open files, if given) capped."""

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (COMMAND_MEMORY, COMMAND_MEMORY))
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    return subprocess.run(
        [sys.executable, "-m", "ocr_backend", "pdf-to-tasks", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, check=False, preexec_fn=limits,
        env={**os.environ, "PYTHONPATH": str(SRC), "OPENBLAS_NUM_THREADS": "1"},
    )  # fmt: skip


def command(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    """The command in this process: its exit status and what it wrote to stderr."""
    status = main(["pdf-to-tasks", *map(str, args)])
    return status, capsys.readouterr().err


def tiny_pdf(path: Path, pages: int = 1) -> Path:
    """A good PDF of small pages (100 x 100 points), quick to render."""
    path.write_bytes(many_pages(pages, size=(100, 100)))
    return path


def documents(out: Path) -> list[str]:
    return [task["data"]["document"] for task in json.loads((out / "tasks.json").read_text())]


def test_a_form_that_draws_itself_fails_alone_within_the_memory_cap(tmp_path):
    hostile = tmp_path / "recursive.pdf"
    hostile.write_bytes(self_drawing_form())
    good = tiny_pdf(tmp_path / "good.pdf")
    out = tmp_path / "out"
    started = time.monotonic()
    done = run(hostile, good, "--out", out, "--url-prefix", "http://x", "--render-memory", "1G")
    took = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert f"{hostile} page 1: the rendering process died" in done.stderr
    assert "--render-memory" in done.stderr
    assert documents(out) == ["good.pdf"]
    assert not (out / "pages" / "recursive").exists(), "the failed PDF's folder is removed"
    assert took < 60


def test_a_page_that_takes_too_long_is_stopped(tmp_path, capsys):
    hostile = tmp_path / "recursive.pdf"
    hostile.write_bytes(self_drawing_form())
    good = tiny_pdf(tmp_path / "good.pdf")
    out = tmp_path / "out"
    # PDFium takes about 0.3 GB a second on it: stopped by the time, well under 4G.
    status, err = command(capsys, hostile, good, "--out", out, "--url-prefix", "http://x",
                          "--page-timeout", "1", "--render-memory", "4G")  # fmt: skip
    assert status == 1, err
    assert f"{hostile} page 1 took more than --page-timeout=1 s to render" in err
    assert documents(out) == ["good.pdf"]


def test_a_pdf_named_dot_dot_never_removes_the_out_folder(tmp_path, capsys):
    out = tmp_path / "out"
    earlier = out / "pages" / "earlier" / "page-0001.png"  # an earlier import's page
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"shown by Label Studio")
    # `...pdf` has the stem `..`: its pages folder was out/pages/.. = out itself. Its
    # page 1 is written, its page 2 too large: the failure removed that folder, out.
    dots = tmp_path / "...pdf"
    first, second = many_pages(2, size=(100, 100)).rsplit(b"[0 0 100 100]", 1)
    dots.write_bytes(first + b"[0 0 99999 99999]" + second)
    good = tiny_pdf(tmp_path / "good.pdf")
    status, err = command(capsys, dots, good, "--out", out, "--url-prefix", "http://x")
    assert status == 1, err
    assert f"{dots} page 2 would be 208331x208331 pixels" in err
    assert earlier.read_bytes() == b"shown by Label Studio"
    assert documents(out) == ["good.pdf"]
    assert sorted(p.name for p in out.iterdir()) == ["label-config.xml", "pages", "tasks.json"]
    assert sorted(p.name for p in (out / "pages").iterdir()) == ["earlier", "good"]


def test_a_pdf_name_that_is_no_folder_name_is_mapped_to_one(tmp_path, capsys):
    out = tmp_path / "out"
    dots = tiny_pdf(tmp_path / "...pdf")
    status, err = command(capsys, dots, "--out", out, "--url-prefix", "http://x")
    assert status == 0, err
    (task,) = json.loads((out / "tasks.json").read_text())
    assert task["data"]["document"] == "...pdf"
    (page,) = task["data"]["pages"]
    folder = page.removeprefix("http://x/pages/").split("/")[0]
    assert folder not in {".", "..", ""}
    assert (out / "pages" / folder / "page-0001.png").is_file()


def test_more_pdfs_than_open_files_allowed(tmp_path):
    """Before: every PDF was opened first; with 64 files allowed, 100 PDFs wrote nothing."""
    folder = tmp_path / "many"
    folder.mkdir()
    for n in range(100):
        tiny_pdf(folder / f"doc-{n:03d}.pdf")
    out = tmp_path / "out"
    done = run(folder, "--out", out, "--url-prefix", "http://x", "--dpi", "36", open_files=64)
    assert done.returncode == 0, done.stderr
    assert len(documents(out)) == 100


def test_a_page_tree_that_lists_itself_fails_alone(tmp_path, capsys):
    loop = tmp_path / "loop.pdf"
    loop.write_bytes(page_tree_listing_itself())
    good = tiny_pdf(tmp_path / "good.pdf")
    out = tmp_path / "out"
    status, err = command(capsys, loop, good, "--out", out, "--url-prefix", "http://x")
    assert status == 1, err
    assert f"{loop} page 1 cannot be loaded by PDFium" in err
    assert documents(out) == ["good.pdf"]


def test_the_header_check_reads_the_start_of_a_large_file_only(tmp_path):
    """A sparse file larger than the command's memory cap: read whole, it could not be."""
    big = tmp_path / "big.pdf"
    with big.open("wb") as file:
        file.truncate(COMMAND_MEMORY + 2 * GiB)
    good = tiny_pdf(tmp_path / "good.pdf")
    out = tmp_path / "out"
    done = run(big, good, "--out", out, "--url-prefix", "http://x")
    assert done.returncode == 1, done.stderr
    assert f"{big} is not a PDF (it starts with b'\\x00\\x00" in done.stderr
    assert documents(out) == ["good.pdf"]


def test_a_fifo_is_refused_not_waited_on(tmp_path, capsys):
    fifo = tmp_path / "pipe.pdf"
    os.mkfifo(fifo)
    good = tiny_pdf(tmp_path / "good.pdf")
    out = tmp_path / "out"
    status, err = command(capsys, fifo, good, "--out", out, "--url-prefix", "http://x")
    assert status == 1, err
    assert f"{fifo} is not a regular file (a FIFO)" in err
    assert documents(out) == ["good.pdf"]


def test_a_pdf_of_more_pages_than_max_pages_is_refused_before_rendering(tmp_path, capsys):
    """A 2.7 MB PDF of 20,000 pages (0.4 GB of PNGs at 150 DPI, 3 hours): refused at once."""
    long = tmp_path / "long.pdf"
    long.write_bytes(many_pages(20_000))
    good = tiny_pdf(tmp_path / "good.pdf")
    out = tmp_path / "out"
    started = time.monotonic()
    status, err = command(capsys, long, good, "--out", out, "--url-prefix", "http://x")
    assert status == 1, err
    assert f"{long} has 20000 pages, more than --max-pages=1000" in err
    assert documents(out) == ["good.pdf"]
    assert not (out / "pages" / "long").exists()
    assert time.monotonic() - started < 30
    _, fewer = command(capsys, tiny_pdf(tmp_path / "three.pdf", 3), "--out", out, "--url-prefix", "http://x",
                "--max-pages", "2")  # fmt: skip
    assert "three.pdf has 3 pages, more than --max-pages=2" in fewer


def test_the_output_budget_stops_a_pdf_and_keeps_the_others(tmp_path, capsys):
    long = tmp_path / "long.pdf"
    long.write_bytes(many_pages(60))  # about 13 KB of PNG a page at 150 DPI
    good = tiny_pdf(tmp_path / "good.pdf")
    out = tmp_path / "out"
    status, err = command(
        capsys, long, good, "--out", out, "--url-prefix", "http://x", "--max-output", "200K"
    )
    assert status == 1, err
    assert f"{long} page " in err and "--max-output=200K" in err
    assert documents(out) == ["good.pdf"]
    assert not (out / "pages" / "long").exists()
    written = sum(f.stat().st_size for f in (out / "pages").rglob("*") if f.is_file())
    assert written <= 200 * 1024
