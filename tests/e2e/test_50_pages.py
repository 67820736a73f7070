"""Documents against a real Label Studio: multi-page tasks and PDFs, page by page.

A project whose Image reads a list of pages (`valueList="$pages"`): one task of
three pages of different sizes (a real photo among them) gets every page's
regions stored with that page's `item_index` and size; a region drawn on page
2 is read from page 2; a screenshot shows page 2 with its regions. Then PDFs
made here go through `ocr-backend pdf-to-tasks --predict` into a project with
a local storage, with no backend connected, and arrive with their regions on
the right pages.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from ocr_backend.documents.tasks import DOCUMENT_LABEL_CONFIG
from tests.support.browser import Browser, browser_missing
from tests.support.environment import REPO_ROOT
from tests.support.label_studio import drawn_rectangle

from .flow import latest_prediction
from .images import TextImage, draw_text_image
from .labelstudio import LabelStudioApi, LabelStudioServer
from .ocr_results import all_texts, regions, words
from .service import Service, service_python

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

PHOTO = REPO_ROOT / "tests" / "images" / "diagram_white_on_colour.jpeg"
PHOTO_WORDS = {"EASYOCR", "FRAMEWORK", "CRAFT"}  # some of what the diagram shows


def words_by_page(result: list[dict[str, Any]]) -> dict[int, set[str]]:
    pages: dict[int, set[str]] = {}
    for items in regions(result).values():
        (page,) = {item.get("item_index") for item in items}  # a region lies on one page
        pages.setdefault(page, set()).update(words(all_texts(items)))
    return pages


def sizes_by_page(result: list[dict[str, Any]]) -> dict[int, set[tuple[int, int]]]:
    sizes: dict[int, set[tuple[int, int]]] = {}
    for item in result:
        sizes.setdefault(item.get("item_index"), set()).add(
            (item["original_width"], item["original_height"])
        )
    return sizes


# -- a multi-page project, a backend connected -----------------------------------------------


@pytest.fixture(scope="module")
def service(token_service: Service, artifacts: Path) -> Iterator[Service]:
    service = token_service.recorded_as("pages", artifacts)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def pages(work_dir: Path, image_server: str) -> list[tuple[str, Any]]:
    """Three pages of different sizes: a real photo, then two drawn pages. (URL, what it is)"""
    root = work_dir / "served-images"  # what the session's image server serves
    shutil.copy(PHOTO, root / "pages-p1.jpeg")
    second = draw_text_image("pages-p2.png", "PAGE TWO", "HAMBURG 2026", width=800)
    third = draw_text_image("pages-p3.png", "THIRD PAGE", "BERLIN", "LAST LINE", width=600)
    for page in (second, third):
        (root / page.name).write_bytes(page.png)
    return [
        (f"{image_server}/pages-p1.jpeg", (1000, 300)),
        (f"{image_server}/{second.name}", second),
        (f"{image_server}/{third.name}", third),
    ]


@pytest.fixture(scope="module")
def project(ls_api: LabelStudioApi, ocr_config: str, pages, timings) -> dict[str, Any]:
    config = ocr_config.replace('value="$ocr"', 'valueList="$pages"')
    assert 'valueList="$pages"' in config
    with timings.step("pages: create project + import a task of 3 pages"):
        created = ls_api.create_project("Documents e2e", config)
        answer = ls_api.import_tasks(created["id"], [{"data": {"pages": [u for u, _ in pages]}}])
    (task_id,) = answer["task_ids"]
    return {"id": created["id"], "task": task_id}


@pytest.fixture(scope="module")
def backend(ls_api: LabelStudioApi, project, service: Service) -> dict[str, Any]:
    response = ls_api.connect_backend(
        project["id"], service.url_for_label_studio, is_interactive=True
    )
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def prediction(ls_api: LabelStudioApi, project, backend, artifacts: Path, timings) -> dict:
    with timings.step("pages: retrieve predictions for a task of 3 pages"):
        answer = ls_api.retrieve_predictions(project["id"], [project["task"]])
    assert answer.get("processed_items") == 1, answer
    stored = latest_prediction(ls_api, project["task"])
    assert stored is not None, "Label Studio stored no prediction for the multi-page task"
    (artifacts / "pages-prediction.json").write_text(json.dumps(stored, indent=1) + "\n")
    return stored


def test_every_pages_regions_are_stored_with_their_item_index_and_size(
    prediction, pages, ls_api: LabelStudioApi, backend
) -> None:
    assert prediction["model_version"] == ls_api.backend(backend["id"])["model_version"]
    result = prediction["result"]
    photo_size = pages[0][1]
    second, third = pages[1][1], pages[2][1]
    assert sizes_by_page(result) == {
        0: {photo_size},
        1: {(second.width, second.height)},
        2: {(third.width, third.height)},
    }
    read = words_by_page(result)
    assert PHOTO_WORDS <= read[0], read[0]
    assert read[1] == second.words, read[1]
    assert read[2] == third.words, read[2]


def test_a_region_drawn_on_page_two_is_read_from_page_two(
    ls_api: LabelStudioApi, project, backend, prediction, pages, service: Service, timings
) -> None:
    second: TextImage = pages[1][1]
    region_id = uuid.uuid4().hex[:10]
    # As the labeling UI serializes a region drawn on a multi-image Image (358.js,
    # createSerializedResult): the page's own size, and item_index = the page shown.
    drawn = drawn_rectangle(second.around_line(1), second.size, region_id=region_id, item_index=1)
    with timings.step("pages: interactive annotating on page 2"):
        answer = ls_api.call(
            "POST",
            f"/api/ml/{backend['id']}/interactive-annotating",
            json={"task": project["task"], "context": {"result": [drawn]}},
        )
    assert "errors" not in answer, answer
    result = answer["data"]["result"]
    assert words(all_texts(result)) == {"HAMBURG", "2026"}, result
    assert {item["item_index"] for item in result} == {1}
    assert region_id in regions(result)
    sent = service.proxy.calls("/predict")[-1].body
    assert sent["params"]["context"]["result"][0]["item_index"] == 1


def test_screenshot_of_page_two_with_its_regions(
    label_studio: LabelStudioServer, project, prediction, pages, work_dir: Path, artifacts: Path,
    timings,
) -> None:  # fmt: skip
    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    second: TextImage = pages[1][1]
    shot = artifacts / f"pages-task-{project['task']}-page-2.png"
    with timings.step("pages: screenshot of page 2 (chromium)"):
        browser = Browser(work_dir, artifacts / "chromedriver-pages.log")
        try:
            browser.log_in(
                f"{label_studio.url}/user/login/", label_studio.email, label_studio.password
            )
            browser.open(f"{label_studio.url}/projects/{project['id']}/data?task={project['task']}")
            # Page 1 shows first; turn to page 2 with the page control's "next" arrow.
            indicator = "const p = document.querySelector('.lsf-pagination__page-indicator');"
            browser.wait_for(
                "the page control and page 1's regions",
                indicator + " return p && p.innerText.trim().startsWith('1')"
                " && document.querySelectorAll('.lsf-outliner-item').length",
                timeout_s=90,
            )
            browser.click(".lsf-pagination__btn_arrow-right")
            try:
                loaded = browser.wait_for(
                    "page 2 shown, its picture loaded",
                    indicator + " if (!p || !p.innerText.trim().startsWith('2')) return false;"
                    # The UI shows pages as blob: URLs of what it fetched: know page 2 by
                    # its size, which no other page has.
                    " const i = Array.from(document.images).find(i => i.complete &&"
                    f" i.naturalWidth === {second.width} && i.naturalHeight === {second.height});"
                    " return i ? `${i.naturalWidth}x${i.naturalHeight}` : false;",
                    timeout_s=30,
                )
            except TimeoutError as error:  # the screenshot is taken either way: it shows why
                images = browser.script("return Array.from(document.images).map(i => i.src)")
                loaded = f"{error}; images on the page: {images}"
            browser.script("return new Promise(r => setTimeout(r, 2000))")
            browser.screenshot(shot)
            # The regions Label Studio made of the stored prediction, with their pages (the
            # regions list beside the picture shows only its first few: it scrolls).
            on_pages = json.loads(
                browser.script(
                    "const a = window.Htx.annotationStore.selected;"
                    " return JSON.stringify(a.regions.map(r => [r.item_index,"
                    " r.results.map(x => (x.value && x.value.text) || []).flat().join(' ')]));"
                )
            )
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    assert loaded == f"{second.width}x{second.height}", f"{loaded}; see {shot}"
    assert {page for page, _ in on_pages} == {0, 1, 2}, on_pages
    assert words([text for page, text in on_pages if page == 1]) == second.words, on_pages


# -- PDFs -> pdf-to-tasks --predict -> local storage -> imported ---------------------------


def make_pdf(path: Path, images: list[Image.Image]) -> Path:
    first, *rest = [image.convert("RGB") for image in images]
    first.save(path, format="PDF", save_all=True, append_images=rest, resolution=100)
    return path


def png_image(page: TextImage) -> Image.Image:
    return Image.open(io.BytesIO(page.png))


@pytest.fixture(scope="module")
def converted(label_studio: LabelStudioServer, work_dir: Path, timings) -> dict[str, Any]:
    """Two PDFs through `ocr-backend pdf-to-tasks --predict`, into Label Studio's document root."""
    assert label_studio.local_files_root is not None
    folder = work_dir / "pdfs"
    folder.mkdir(exist_ok=True)
    letter = [
        draw_text_image("l1.png", "DEAR READER", width=700),
        draw_text_image("l2.png", "SECOND SHEET", "KIND REGARDS", width=900),
    ]
    make_pdf(folder / "letter.pdf", [png_image(page) for page in letter])
    make_pdf(folder / "diagram.pdf", [Image.open(PHOTO)])
    out = label_studio.local_files_root / "documents"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT / "src"),
        "LANG_LIST": "en",
    }
    argv = [service_python(), "-m", "ocr_backend", "pdf-to-tasks", str(folder), "--out",
            str(out), "--document-root", str(label_studio.local_files_root), "--dpi", "100",
            "--predict"]  # fmt: skip
    with timings.step("pdf-to-tasks --predict: 2 PDFs, 3 pages"):
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return {
        "out": out,
        "tasks": json.loads((out / "tasks.json").read_text()),
        "letter": letter,
    }


def test_pdfs_through_pdf_to_tasks_arrive_with_regions_on_their_pages(
    ls_api: LabelStudioApi, ls_session: httpx.Client, converted, timings
) -> None:
    tasks = converted["tasks"]
    assert [task["data"]["document"] for task in tasks] == ["diagram.pdf", "letter.pdf"]
    with timings.step("pdf-to-tasks: project + local storage + import"):
        project = ls_api.create_project("PDF documents e2e", DOCUMENT_LABEL_CONFIG)
        ls_api.add_local_storage(project["id"], converted["out"])
        answer = ls_api.import_tasks(project["id"], tasks)
    task_ids = answer["task_ids"]
    assert len(task_ids) == 2 and answer.get("prediction_count") == 2, answer
    stored = {ls_api.task(t)["data"]["document"]: latest_prediction(ls_api, t) for t in task_ids}
    letter = converted["letter"]

    diagram = stored["diagram.pdf"]
    assert diagram["model_version"].startswith("easyocr-")
    assert set(words_by_page(diagram["result"])) == {0}
    assert PHOTO_WORDS <= words_by_page(diagram["result"])[0]
    assert sizes_by_page(diagram["result"]) == {0: {(1000, 300)}}

    read = words_by_page(stored["letter.pdf"]["result"])
    assert read == {0: letter[0].words, 1: letter[1].words}, read
    sizes = sizes_by_page(stored["letter.pdf"]["result"])
    assert sorted(sizes) == [0, 1] and all(len(size) == 1 for size in sizes.values()), sizes
    for index, page in enumerate(letter):
        # A PDF page's size is in points: rendered back at the same DPI, it may gain a pixel.
        ((width, height),) = sizes[index]
        assert abs(width - page.width) <= 1 and abs(height - page.height) <= 1, sizes

    # Label Studio serves every page from its local storage, at the size the regions name.
    letter_task = next(t for t in tasks if t["data"]["document"] == "letter.pdf")
    for index, url in enumerate(letter_task["data"]["pages"]):
        response = ls_session.get(url)
        assert response.status_code == 200, (url, response.status_code)
        assert {Image.open(io.BytesIO(response.content)).size} == sizes[index]
