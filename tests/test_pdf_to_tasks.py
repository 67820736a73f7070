"""`ocr-backend pdf-to-tasks`: PDFs made here from real images and drawn text, rendered,
written as Label Studio import tasks; with --predict, read by real EasyOCR."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from ocr_backend.__main__ import main
from ocr_backend.convert import lines_to_regions
from ocr_backend.documents.batch import ConvertOptions, convert_documents
from ocr_backend.documents.tasks import DOCUMENT_LABEL_CONFIG, PageUrls
from ocr_backend.label_studio.config import parse_label_config
from ocr_backend.ocr.lines import to_text_line
from tests.support.drawing import draw_page
from tests.support.photos import sign_photos

pytestmark = pytest.mark.slow  # the command as a process, PDFs rendered and read

IMAGES = Path(__file__).parent / "images"
SRC = Path(__file__).resolve().parents[1] / "src"


def make_pdf(path: Path, pages: list[Image.Image], dpi: int = 100) -> Path:
    """A PDF of the images, each page as large in points as the image at `dpi`."""
    first, *rest = [page.convert("RGB") for page in pages]
    first.save(path, format="PDF", save_all=True, append_images=rest, resolution=dpi)
    return path


@pytest.fixture
def letter(tmp_path) -> Path:
    page, _ = draw_page(["DEAR READER", "Invoice 2024"], font_size=40)
    return make_pdf(tmp_path / "letter.pdf", [page])


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it: its own process, the environment's settings."""
    environment = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "ocr_backend", "pdf-to-tasks", *args],
        capture_output=True, text=True, env=environment, timeout=280, check=False,
    )  # fmt: skip


def test_pages_become_one_task_with_local_files_urls_and_their_images(tmp_path, letter):
    photo = Image.open(IMAGES / "diagram_white_on_colour.jpeg")
    second, _ = draw_page(["SECOND PAGE"], size=(500, 700), font_size=40)
    pdf = make_pdf(tmp_path / "two pages.pdf", [photo, second])
    out = tmp_path / "root" / "docs"
    status = main(["pdf-to-tasks", str(pdf), str(letter), "--out", str(out),
                   "--document-root", str(tmp_path / "root"), "--dpi", "100"])  # fmt: skip
    assert status == 0
    tasks = json.loads((out / "tasks.json").read_text())
    assert [task["data"]["document"] for task in tasks] == ["two pages.pdf", "letter.pdf"]
    pages = tasks[0]["data"]["pages"]
    assert pages == [
        "/data/local-files/?d=docs/pages/two%20pages/page-0001.png",
        "/data/local-files/?d=docs/pages/two%20pages/page-0002.png",
    ]
    assert "predictions" not in tasks[0]
    # Rendered at the DPI the PDF was written with: the pages come back at their own sizes.
    assert Image.open(out / "pages/two pages/page-0001.png").size == (1000, 300)
    assert Image.open(out / "pages/two pages/page-0002.png").size == (500, 700)
    assert 'valueList="$pages"' in (out / "label-config.xml").read_text()


def test_dpi_scales_the_pages_and_a_url_prefix_names_them(tmp_path, letter):
    out = tmp_path / "out"
    status = main(["pdf-to-tasks", str(letter), "--out", str(out), "--dpi", "200",
                   "--url-prefix", "https://files.example.com/docs/"])  # fmt: skip
    assert status == 0
    (task,) = json.loads((out / "tasks.json").read_text())
    assert task["data"]["pages"] == ["https://files.example.com/docs/pages/letter/page-0001.png"]
    drawn, _ = draw_page(["DEAR READER", "Invoice 2024"], font_size=40)
    width, height = Image.open(out / "pages/letter/page-0001.png").size
    assert abs(width - drawn.width * 2) <= 2 and abs(height - drawn.height * 2) <= 2


def test_a_file_that_is_not_a_pdf_is_left_out_with_its_own_error(tmp_path, letter, capsys):
    fake = tmp_path / "scan.pdf"
    Image.open(IMAGES / "street_signs.png").save(fake, format="PNG")
    status = main(["pdf-to-tasks", str(fake), str(letter), "--out", str(tmp_path / "out"),
                   "--url-prefix", "http://x"])  # fmt: skip
    assert status == 1
    error = capsys.readouterr().err
    assert f"{fake} is not a PDF (it starts with b'\\x89PNG" in error
    tasks = json.loads((tmp_path / "out" / "tasks.json").read_text())
    assert [task["data"]["document"] for task in tasks] == ["letter.pdf"]


def test_a_damaged_pdf_says_it_cannot_be_opened(tmp_path, capsys):
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n")
    status = main(["pdf-to-tasks", str(broken), "--out", str(tmp_path / "out"),
                   "--url-prefix", "http://x"])  # fmt: skip
    assert status == 1
    assert "looks like a PDF but PDFium cannot open it" in capsys.readouterr().err


def test_a_page_too_large_at_the_dpi_fails_its_pdf_naming_the_page(tmp_path, letter, capsys):
    small, _ = draw_page(["SMALL"], font_size=40)
    poster = Image.new("RGB", (4000, 4000), "white")  # 40 x 40 inches at 100 DPI
    pdf = make_pdf(tmp_path / "poster.pdf", [small, poster])
    out = tmp_path / "out"
    status = main(["pdf-to-tasks", str(pdf), str(letter), "--out", str(out), "--dpi", "300",
                   "--url-prefix", "http://x"])  # fmt: skip
    assert status == 1
    error = capsys.readouterr().err
    assert f"{pdf} page 2 would be 12000x12000 pixels at 300 DPI" in error
    assert "lower --dpi or raise MAX_IMAGE_PIXELS" in error
    assert not (out / "pages" / "poster").exists(), "a failed PDF's pages are removed"
    tasks = json.loads((out / "tasks.json").read_text())
    assert [task["data"]["document"] for task in tasks] == ["letter.pdf"]


def test_pages_need_a_place_in_label_studio(tmp_path, letter, capsys, monkeypatch):
    monkeypatch.delenv("LOCAL_FILES_DOCUMENT_ROOT", raising=False)
    assert main(["pdf-to-tasks", str(letter), "--out", str(tmp_path / "out")]) == 2
    assert "--document-root" in capsys.readouterr().err
    outside = ["pdf-to-tasks", str(letter), "--out", str(tmp_path / "out"),
               "--document-root", str(tmp_path / "elsewhere")]  # fmt: skip
    assert main(outside) == 2
    assert "is not under the document root" in capsys.readouterr().err


def test_predict_puts_each_pages_regions_on_that_page(tmp_path, settings):
    """The real command in its own process, reading with EasyOCR as `serve` would."""
    first, _ = draw_page(["INVOICE 2024", "Total due 512"], font_size=44)
    blank = Image.new("RGB", (400, 300), "white")
    photo = Image.open(IMAGES / "diagram_white_on_colour.jpeg")
    pdf = make_pdf(tmp_path / "report.pdf", [first, blank, photo])
    env = {"LANG_LIST": "en", "MODEL_DOWNLOAD": "false", "MODEL_DIR": str(settings.model_dir),
           "LOCAL_FILES_DOCUMENT_ROOT": str(tmp_path)}  # fmt: skip
    done = run(str(pdf), "--out", str(tmp_path / "out"), "--dpi", "100", "--predict", env=env)
    assert done.returncode == 0, done.stderr
    assert "1 task(s), 3 page(s) read" in done.stdout
    assert "page 2: no text found" in done.stderr  # the blank page: said, not an error
    (task,) = json.loads((tmp_path / "out" / "tasks.json").read_text())
    assert task["data"]["pages"][0] == "/data/local-files/?d=out/pages/report/page-0001.png"
    (prediction,) = task["predictions"]
    assert (
        prediction["model_version"].startswith("easyocr-") and "-en-" in prediction["model_version"]
    )
    texts: dict[int, set[str]] = {}
    sizes: dict[int, set[tuple[int, int]]] = {}
    for item in prediction["result"]:
        sizes.setdefault(item["item_index"], set()).add(
            (item["original_width"], item["original_height"])
        )
        if item["type"] == "textarea":
            texts.setdefault(item["item_index"], set()).update(
                word.upper() for text in item["value"]["text"] for word in text.split()
            )
    assert sorted(texts) == [0, 2], "the blank page has no regions, the others do"
    assert texts[0] == {"INVOICE", "2024", "TOTAL", "DUE", "512"}
    assert {"EASYOCR", "FRAMEWORK", "CRAFT"} <= texts[2]
    assert sizes == {0: {first.size}, 2: {(1000, 300)}}


@pytest.mark.timeout(900)  # three real pages read twice: by the batch code and by readtext
def test_predict_reads_each_page_as_readtext_reads_the_png_written(tmp_path, engine):
    """A PDF of the real photos: each page's regions are readtext's on the page's PNG file.

    So a backend connected later, which fetches that PNG, predicts what the
    import file already holds. Before, the rendered page was read from memory
    and greyed its own way: on the diagram's page, 17 of readtext's 18 lines
    on the PNG came back with another box or score, one with another text
    (`Docoders` for `Docodors`). The command's own batch code, on the
    session's engine (the command as a process is
    test_predict_puts_each_pages_regions_on_that_page).
    """
    photos = [Image.open(IMAGES / name) for name in PHOTOS]
    photos[1] = sign_photos()  # without the printed lists: 3/4 of this test's reading time
    photos[2] = photos[2].crop((0, 0, 1000, 500))  # the screenshot's top left: its menus
    pdf = make_pdf(tmp_path / "photos.pdf", photos)
    out = tmp_path / "out"
    options = ConvertOptions(
        out=out, dpi=100, max_pixels=50_000_000,
        targets=parse_label_config(DOCUMENT_LABEL_CONFIG),
        page_urls=PageUrls(out, url_prefix="http://x"), model_version="v",
    )  # fmt: skip
    (result,) = asyncio.run(convert_documents([pdf], options, engine))
    assert result.task is not None, result.error
    (prediction,) = result.task["predictions"]
    targets = parse_label_config(DOCUMENT_LABEL_CONFIG)
    for index in range(len(PHOTOS)):
        png = out / "pages" / "photos" / f"page-{index + 1:04d}.png"
        width, height = Image.open(png).size
        found = engine._pool.submit(engine.reader.easyocr.readtext, str(png)).result()
        lines = [to_text_line(box, str(text).strip(), score) for box, text, score in found]
        expected = lines_to_regions(
            [line for line in lines if line.text], targets, width, height,
            region_id=lambda: "id", item_index=index,
        )  # fmt: skip
        got = [{**item, "id": "id"} for item in prediction["result"] if item["item_index"] == index]
        assert len(expected) >= 5, "each photo has several lines of text"
        assert [texts(item) for item in got] == [texts(item) for item in expected]
        for mine, theirs in zip(got, expected, strict=True):
            assert mine["score"] == pytest.approx(theirs["score"], abs=1e-6)
            assert within_a_pixel(mine["value"], theirs["value"], width, height)


PHOTOS = ["diagram_white_on_colour.jpeg", "street_signs.png", "label_studio_screenshot.png"]


def texts(item: dict[str, object]) -> object:
    value = item["value"]
    assert isinstance(value, dict)
    return item["from_name"], value.get("text")


def within_a_pixel(
    mine: dict[str, object], theirs: dict[str, object], width: int, height: int
) -> bool:
    """Two region geometries (percent of the page) the same to a pixel."""
    for key, scale in (("x", width), ("y", height), ("width", width), ("height", height)):
        if key in theirs and abs(float(mine[key]) - float(theirs[key])) * scale / 100 > 1:  # type: ignore[arg-type]
            return False
    for (x, y), (x2, y2) in zip(mine.get("points", []), theirs.get("points", []), strict=True):  # type: ignore[call-overload]
        if abs(x - x2) * width / 100 > 1 or abs(y - y2) * height / 100 > 1:
            return False
    return mine.get("rotation") == pytest.approx(theirs.get("rotation"), abs=0.5)
