"""`ocr-backend pdf-to-tasks FILE.pdf... --out DIR`: PDFs -> page images + an import file.

Thin: the rendering is in documents/pdf.py, the tasks in documents/tasks.py,
the work in documents/batch.py. Works offline: nothing is fetched.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the engine's imports cost seconds: only when the command runs
    from ..documents.batch import ConvertOptions, DocumentResult
    from ..documents.renderer import RenderLimits
    from ..ocr.local import LocalEngine

HELP = (
    "render PDFs page by page into images and write a Label Studio import file, "
    "one multi-page task per PDF (with --predict, pre-annotated)"
)
TASKS_FILE = "tasks.json"
CONFIG_FILE = "label-config.xml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "pdfs", nargs="+", type=Path, metavar="FILE.pdf", help="PDF files, or folders of them"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for the page images and tasks.json"
    )
    parser.add_argument(
        "--dpi",
        type=float,
        default=150,
        help="render resolution (default 150; 200-300 for small print)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--document-root",
        type=Path,
        help="Label Studio's LOCAL_FILES_DOCUMENT_ROOT (default: that variable): pages are "
        "named /data/local-files/?d=<path under it>, for a local storage on --out",
    )
    where.add_argument(
        "--url-prefix", help="the URL --out is served at, e.g. https://files.example.com/docs"
    )
    parser.add_argument(
        "--label-config",
        type=Path,
        help="the project's label config XML (default: the OCR template with "
        '<Image valueList="$pages">, written to --out/label-config.xml)',
    )
    caps = parser.add_argument_group(
        "caps",
        "each PDF is rendered in a process of its own, within these caps; a PDF that "
        "passes one is left out with its reason, and the others go on",
    )
    caps.add_argument(
        "--max-pages", type=int, default=1000, metavar="N",
        help="refuse a PDF of more pages than this, before rendering any (default 1000)",
    )  # fmt: skip
    caps.add_argument(
        "--max-output", default="10G", metavar="SIZE",
        help="bytes of page images the whole run may write, e.g. 500M, 20G (default 10G); the "
        "PDF that would pass it is left out",
    )  # fmt: skip
    caps.add_argument(
        "--render-memory", metavar="SIZE",
        help="memory (address space) of the rendering process (default 2G, more when "
        "MAX_IMAGE_PIXELS is above 50 million)",
    )  # fmt: skip
    caps.add_argument(
        "--page-timeout", type=float, default=60, metavar="SECONDS",
        help="seconds to render and write one page (default 60)",
    )  # fmt: skip
    parser.add_argument(
        "--predict",
        action="store_true",
        help="read every page with EasyOCR here (LANG_LIST etc. from the environment) and put "
        "the predictions in the import file",
    )


def run(args: argparse.Namespace) -> int:
    from ..documents.batch import ConvertOptions
    from ..documents.tasks import DOCUMENT_LABEL_CONFIG, PageUrls
    from ..errors import LabelConfigError, StartupError
    from ..label_studio.config import parse_label_config
    from ..logs import configure_logging
    from .serve import load_settings

    settings = load_settings()
    if settings is None:
        return 2
    configure_logging("WARNING")
    config = args.label_config.read_text() if args.label_config else DOCUMENT_LABEL_CONFIG
    try:
        targets = parse_label_config(config, settings.label_mappings)
    except LabelConfigError as exc:
        return _fail(f"{args.label_config}: {exc}")
    if not targets.multi_page:
        return _fail(
            f'{args.label_config}: its <Image name="{targets.image}"> reads one image; give it '
            f'valueList="$pages" so that a task shows every page of its PDF'
        )
    if args.dpi <= 0:
        return _fail(f"--dpi must be above 0, not {args.dpi:g}")
    limits = _limits(args, settings.max_image_pixels)
    if isinstance(limits, str):
        return _fail(limits)
    pdfs = _pdf_files(args.pdfs)
    if isinstance(pdfs, str):
        return _fail(pdfs)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    root = args.document_root or os.environ.get("LOCAL_FILES_DOCUMENT_ROOT")
    if args.url_prefix is None and not root:
        return _fail(
            "say where Label Studio will find the pages: --document-root (Label Studio's "
            "LOCAL_FILES_DOCUMENT_ROOT, with --out under it) or --url-prefix"
        )
    try:
        page_urls = PageUrls(
            out,
            document_root=Path(root) if args.url_prefix is None and root else None,
            url_prefix=args.url_prefix,
        )
    except ValueError as exc:
        return _fail(str(exc))

    engine = None
    model_version = None
    if args.predict:
        # What EasyOCR's CPU quantization says on every start means nothing to the user here.
        warnings.filterwarnings("ignore", "torch.quantize_per_tensor", UserWarning)
        warnings.filterwarnings("ignore", "'pin_memory' argument is set as true", UserWarning)
        from ..ocr.local import LocalEngine
        from ..predictor import model_version as version_of

        try:
            engine = LocalEngine.load(settings)
        except StartupError as exc:
            return _fail(str(exc))
        model_version = version_of(settings, engine)
    options = ConvertOptions(
        out=out,
        dpi=args.dpi,
        max_pixels=settings.max_image_pixels,
        targets=targets,
        page_urls=page_urls,
        score_threshold=settings.score_threshold,
        model_version=model_version,
        limits=limits,
    )
    try:
        results = _with_progress(pdfs, options, engine)
    finally:
        if engine is not None:
            engine.close()

    tasks = [result.task for result in results if result.task is not None]
    (out / TASKS_FILE).write_text(json.dumps(tasks, indent=1, ensure_ascii=False) + "\n")
    if not args.label_config:
        (out / CONFIG_FILE).write_text(DOCUMENT_LABEL_CONFIG)
    failed = [result for result in results if result.error]
    for result in results:
        for note in result.notes:
            print(f"ocr-backend: note: {result.source}: {note}", file=sys.stderr)
    for result in failed:
        print(f"ocr-backend: error: {result.error}", file=sys.stderr)
    pages = sum(result.pages for result in results if result.task is not None)
    print(
        f"{len(tasks)} task(s), {pages} page(s){' read' if engine else ''} -> {out / TASKS_FILE}"
        + (f"; {len(failed)} PDF(s) left out, see above" if failed else "")
    )
    return 1 if failed else 0


def _limits(args: argparse.Namespace, max_pixels: int) -> RenderLimits | str:
    """The caps the options give, or what is wrong with them."""
    from ..documents.renderer import GiB, RenderLimits, parse_size

    if args.max_pages < 1:
        return f"--max-pages must be 1 or more, not {args.max_pages}"
    if not args.page_timeout > 0:
        return f"--page-timeout must be above 0 seconds, not {args.page_timeout:g}"
    # A page of MAX_IMAGE_PIXELS is held about three times over while it is rendered and
    # saved (PDFium's 4-byte bitmap, Pillow's RGB copy, the PNG encoder's rows); 16 bytes
    # a pixel, on top of 1 GiB for Python and PDFium, leaves room to spare.
    memory = max(2 * GiB, 16 * max_pixels + GiB)
    sizes = {"--max-output": args.max_output, "--render-memory": args.render_memory}
    parsed = {}
    for option, text in sizes.items():
        if text is None:
            continue
        try:
            parsed[option] = parse_size(text)
        except ValueError:
            return f"{option} must be a size such as 500M or 2G, not {text!r}"
    return RenderLimits(
        max_pages=args.max_pages,
        max_output=parsed["--max-output"],
        memory=parsed.get("--render-memory", memory),
        page_timeout=args.page_timeout,
    )


def _with_progress(
    pdfs: list[Path], options: ConvertOptions, engine: LocalEngine | None
) -> list[DocumentResult]:
    """Convert, with a progress bar of pages on stderr (its total grows as PDFs are opened)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from ..documents.batch import convert_documents

    console = Console(stderr=True)
    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=not console.is_terminal) as progress:
        label = "reading pages" if engine else "rendering pages"
        bar = progress.add_task(label, total=None)
        counted = 0

        def on_count(pages: int) -> None:
            nonlocal counted
            counted += pages
            progress.update(bar, total=counted)

        return asyncio.run(
            convert_documents(
                pdfs, options, engine, on_page=lambda: progress.advance(bar), on_count=on_count
            )
        )


def _pdf_files(paths: list[Path]) -> list[Path] | str:
    """The PDFs named, folders expanded (sorted), or what is wrong."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.suffix.lower() == ".pdf")
            if not inside:
                return f"{path} is a folder with no .pdf file in it"
            found.extend(inside)
        elif path.exists():
            found.append(path)
        else:
            return f"{path} does not exist"
    return found


def _fail(message: str) -> int:
    print(f"ocr-backend: {message}", file=sys.stderr)
    return 2
