"""Pages per second of `ocr-backend pdf-to-tasks` on a 20-page PDF, with and without --predict.

The PDF is made here: A4 pages of text at 150 DPI (bench/pages.py's
documents), as a scanner would give them. Both runs are the real command in
its own process, timed from start to exit (the --predict run includes
loading EasyOCR, once). Prints what it measured:

    python -m bench.pdf_to_tasks [--pages 20] [--dpi 150]   (from the repository root)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.pages import document

ROOT = Path(__file__).resolve().parents[1]


def make_pdf(path: Path, pages: int, dpi: int) -> None:
    # A4 at `dpi`: 8.27 x 11.69 inches.
    size = (round(8.27 * dpi), round(11.69 * dpi))
    images = [document(*size, lines=30, seed=seed) for seed in range(pages)]
    images[0].save(path, format="PDF", save_all=True, append_images=images[1:], resolution=dpi)


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{done.stderr}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--dpi", type=int, default=150)
    args = parser.parse_args()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "LANG_LIST": os.environ.get("LANG_LIST", "en"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / "document.pdf"
        make_pdf(pdf, args.pages, args.dpi)
        command = [sys.executable, "-m", "ocr_backend", "pdf-to-tasks", str(pdf),
                   "--dpi", str(args.dpi), "--url-prefix", "http://files.example"]  # fmt: skip
        render = timed([*command, "--out", f"{tmp}/render"], env)
        predict = timed([*command, "--out", f"{tmp}/predict", "--predict"], env)
    threads = os.environ.get("THREADS", "1")
    print(f"{args.pages}-page PDF (A4 at {args.dpi} DPI), THREADS={threads}, {os.cpu_count()} CPUs")
    print(f"  render only : {render:7.1f} s  {args.pages / render:6.2f} pages/s")
    print(f"  --predict   : {predict:7.1f} s  {args.pages / predict:6.2f} pages/s")
    print(f"  --predict takes {predict / render:.0f}x as long: reading, not rendering, costs")


if __name__ == "__main__":
    main()
