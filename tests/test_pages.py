"""Multi-page tasks: `<Image valueList="$pages">`, every page read, regions on their page.

Real EasyOCR reads pages of different sizes, a real photo among them, served
by a real HTTP server on 127.0.0.1, through the whole service (TestClient on
create_app), as Label Studio 1.23 sends them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ocr_backend.api import create_app
from ocr_backend.convert import lines_to_regions
from ocr_backend.errors import LabelConfigError
from ocr_backend.label_studio.config import parse_label_config
from ocr_backend.label_studio.regions import drawn_regions, region_items
from ocr_backend.ocr.lines import TextLine
from tests.support.drawing import draw_page
from tests.support.label_studio import OCR_TEMPLATE, drawn_rectangle, ls_predict_body
from tests.support.settings import changed

IMAGES = Path(__file__).parent / "images"
PAGES_TEMPLATE = OCR_TEMPLATE.replace('value="$ocr"', 'valueList="$pages"')
DIAGRAM_WORDS = {"EASYOCR", "FRAMEWORK", "CRAFT", "GENERATOR"}  # some of what it shows


def words(texts) -> set[str]:
    return {word.strip(".,:;").upper() for text in texts for word in text.split()}


def pages_body(*tasks: list, interactive: dict | None = None) -> dict:
    """Label Studio's /predict body for multi-page tasks: `pages` holds each task's page URLs."""
    body = ls_predict_body(*(["unused"] * len(tasks)))
    for task, pages in zip(body["tasks"], tasks, strict=True):
        task["data"] = {"pages": pages}
    body["label_config"] = PAGES_TEMPLATE
    if interactive is not None:
        body["params"]["context"] = interactive
    return body


def by_page(result: list[dict]) -> dict[int, list[dict]]:
    pages: dict[int, list[dict]] = {}
    for item in result:
        pages.setdefault(item["item_index"], []).append(item)
    return pages


@pytest.fixture(scope="module")
def client(settings, engine):
    with TestClient(create_app(settings, engine=engine)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def document(image_server):
    """Three pages of different sizes: drawn text, a real photo of a diagram, drawn text."""
    first, _ = draw_page(["INVOICE 2024", "Total due 512"], font_size=44)
    third, _ = draw_page(["PAGE THREE", "Berlin"], size=(700, 420), font_size=48)
    shutil.copy(IMAGES / "diagram_white_on_colour.jpeg", image_server.root / "doc-p2.jpeg")
    urls = [
        image_server.put("doc-p1.png", first),
        image_server.url("doc-p2.jpeg"),
        image_server.put("doc-p3.png", third),
    ]
    sizes = [first.size, (1000, 300), third.size]
    assert len(set(sizes)) == 3
    return urls, sizes


@pytest.fixture(scope="module")
def document_prediction(client, document):
    urls, _ = document
    response = client.post("/predict", json=pages_body(urls))
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["results"]
    return prediction


# -- the label config ----------------------------------------------------------------------


def test_an_image_with_value_list_reads_a_list_of_pages():
    targets = parse_label_config(PAGES_TEMPLATE)
    assert targets.multi_page and targets.image_key == "pages" and targets.image == "image"
    assert not parse_label_config(OCR_TEMPLATE).multi_page


def test_a_value_list_without_a_variable_says_how_to_write_it():
    with pytest.raises(LabelConfigError, match=r'needs valueList="\$<task data key>"'):
        parse_label_config(PAGES_TEMPLATE.replace('valueList="$pages"', 'valueList="pages"'))


def test_setup_accepts_a_multi_page_config(client):
    response = client.post("/setup", json={"project": "7.1", "schema": PAGES_TEMPLATE})
    assert response.status_code == 200, response.text
    assert response.json()["model_version"] == client.get("/health").json()["model_version"]


# -- conversion: pure functions ------------------------------------------------------------


def test_regions_carry_their_page_and_that_pages_size():
    targets = parse_label_config(PAGES_TEMPLATE)
    line = TextLine(((10, 10), (110, 10), (110, 40), (10, 40)), "Hello", 0.9)
    on_page = lines_to_regions([line], targets, 400, 200, item_index=2)
    assert {item["item_index"] for item in on_page} == {2}
    assert {(item["original_width"], item["original_height"]) for item in on_page} == {(400, 200)}
    assert all("item_index" not in item for item in lines_to_regions([line], targets, 400, 200))


def test_a_drawn_region_keeps_its_page_and_its_text_item_names_it():
    drawn = {"id": "r1", "type": "rectangle", "from_name": "bbox", "to_name": "image",
             "original_width": 700, "original_height": 420, "image_rotation": 0,
             "item_index": 1, "value": {"x": 1, "y": 1, "width": 50, "height": 20, "rotation": 0}}  # fmt: skip
    (region,) = drawn_regions({"result": [drawn]})
    assert region.item_index == 1
    textarea = region_items(region, parse_label_config(PAGES_TEMPLATE), "Berlin")[-1]
    assert textarea["item_index"] == 1 and textarea["value"]["text"] == ["Berlin"]


# -- a whole document ----------------------------------------------------------------------


def test_every_page_is_read_and_each_region_names_its_page_and_size(
    document, document_prediction, client
):
    _, sizes = document
    pages = by_page(document_prediction["result"])
    assert sorted(pages) == [0, 1, 2], "a page got no regions"
    for index, items in pages.items():
        assert {(i["original_width"], i["original_height"]) for i in items} == {sizes[index]}
        assert {i["to_name"] for i in items} == {"image"}
    texts = {
        index: words(t for i in items if i["type"] == "textarea" for t in i["value"]["text"])
        for index, items in pages.items()
    }
    assert {"INVOICE", "2024", "TOTAL", "DUE", "512"} == texts[0]
    assert DIAGRAM_WORDS <= texts[1]
    assert {"PAGE", "THREE", "BERLIN"} == texts[2]
    assert document_prediction["model_version"] == client.get("/health").json()["model_version"]
    assert 0 < document_prediction["score"] <= 1
    assert "error" not in document_prediction


def test_pages_are_fetched_once_each(document, document_prediction, image_server):
    urls, _ = document
    fetched = [path for path, _ in image_server.requests if path.startswith("/doc-p")]
    assert sorted(fetched) == ["/doc-p1.png", "/doc-p2.jpeg", "/doc-p3.png"]


# -- failures: one page, one task ----------------------------------------------------------


def test_a_failing_page_fails_its_task_with_the_page_number_and_spares_the_next_task(
    client, image_server
):
    good, _ = draw_page(["GOOD PAGE"], font_size=40)
    neighbour, _ = draw_page(["NEIGHBOUR"], font_size=40)
    pages = [image_server.put("fail-p1.png", good), image_server.url("missing-page.png")]
    body = pages_body(pages, [image_server.put("neighbour-p1.png", neighbour)])
    response = client.post("/predict", json=body)
    assert response.status_code == 200, response.text
    failed, other = response.json()["results"]
    assert failed["error"].startswith("page 2 of 2 (item_index 1): cannot fetch image ")
    assert "HTTP 404" in failed["error"]
    assert not failed.get("result"), "a failed task must not store regions"
    assert failed["model_version"] == client.get("/health").json()["model_version"]
    assert "error" not in other
    assert words(t for i in other["result"] if i["type"] == "textarea"
                 for t in i["value"]["text"]) == {"NEIGHBOUR"}  # fmt: skip


@pytest.mark.parametrize("empty", ["", None, "   "])
def test_an_empty_page_in_the_list_says_which_page(client, image_server, empty):
    page, _ = draw_page(["ONE"], font_size=40)
    body = pages_body([image_server.put("empty-neighbour.png", page), empty])
    (prediction,) = client.post("/predict", json=body).json()["results"]
    assert "page 2 of 2 (item_index 1)" in prediction["error"]
    assert "is empty or not a URL" in prediction["error"]


def test_an_empty_list_of_pages_says_so(client):
    (prediction,) = client.post("/predict", json=pages_body([])).json()["results"]
    assert 'its "pages" list of pages is empty' in prediction["error"]


def test_a_task_without_the_pages_key_names_the_key_and_the_config(client):
    body = pages_body(["x"])
    body["tasks"][0]["data"] = {"ocr": "http://127.0.0.1:9/x.png"}
    (prediction,) = client.post("/predict", json=body).json()["results"]
    assert 'has no "pages" in its data (it has: ocr)' in prediction["error"]
    assert 'valueList="$pages"' in prediction["error"]


def test_a_list_under_a_one_image_config_points_to_value_list(client, image_server):
    body = ls_predict_body("unused")
    body["tasks"][0]["data"] = {"ocr": [image_server.url("a.png"), image_server.url("b.png")]}
    (prediction,) = client.post("/predict", json=body).json()["results"]
    assert "is a list of 2 images" in prediction["error"]
    assert '<Image valueList="$ocr">' in prediction["error"]


def test_a_pdf_url_is_refused_unfetched_naming_pdf_to_tasks(client, image_server):
    before = len(image_server.requests)
    url = image_server.url("contract.pdf")
    (single,) = client.post("/predict", json=ls_predict_body(url)).json()["results"]
    (paged,) = client.post("/predict", json=pages_body([url])).json()["results"]
    assert "is a PDF" in single["error"] and "ocr-backend pdf-to-tasks" in single["error"]
    assert paged["error"].startswith("page 1 of 1 (item_index 0): image ")
    assert "ocr-backend pdf-to-tasks" in paged["error"]
    assert len(image_server.requests) == before, "a PDF was downloaded only to be refused"


def test_pdf_bytes_under_an_image_name_are_recognised_as_a_pdf(client, image_server):
    page, _ = draw_page(["SCANNED"], font_size=40)
    page.save(image_server.root / "scan-really-a-pdf.png", format="PDF")
    url = image_server.url("scan-really-a-pdf.png")
    (prediction,) = client.post("/predict", json=ls_predict_body(url)).json()["results"]
    assert "the file is a PDF" in prediction["error"]
    assert "ocr-backend pdf-to-tasks" in prediction["error"]


# -- the queue counts pages ----------------------------------------------------------------


def test_pages_count_against_max_queue(settings, engine, image_server):
    app = create_app(changed(settings, max_queue=3), engine=engine)
    urls = [image_server.url(f"never-{i}.png") for i in range(4)]
    with TestClient(app) as small:
        # One task (an annotator opening it) goes through the queue: its 4 pages do not fit.
        too_big = small.post("/predict", json=pages_body(urls))
        one_image_each = small.post("/predict", json=ls_predict_body(*urls[:3]))
    assert too_big.status_code == 413
    assert too_big.json()["detail"].startswith("This request has 4 pages, more than MAX_QUEUE=3")
    assert one_image_each.status_code == 200  # tasks of a bulk request wait on disk


# -- interactive on a page -----------------------------------------------------------------


def test_a_region_drawn_on_page_two_reads_page_two_only(client, image_server):
    first, _ = draw_page(["FIRST PAGE TEXT"], font_size=44)
    second, drawn = draw_page(["Order 4711", "Hamburg"], size=(640, 300), font_size=44)
    urls = [image_server.put("ia-p1.png", first), image_server.put("ia-p2.png", second)]
    left, top, right, bottom = drawn[1].box
    region = drawn_rectangle(
        (left - 8, top - 8, right + 8, bottom + 8), second.size, region_id="on-page-2", item_index=1
    )
    response = client.post("/predict", json=pages_body(urls, interactive={"result": [region]}))
    (prediction,) = response.json()["results"]
    assert "error" not in prediction, prediction
    shape, textarea = prediction["result"]
    assert shape == region
    assert textarea["item_index"] == 1 and textarea["value"]["text"] == ["Hamburg"]
    fetched = [path for path, _ in image_server.requests if path.startswith("/ia-p")]
    assert fetched == ["/ia-p2.png"], "only the page the region was drawn on is fetched"


def test_a_region_on_a_page_the_task_lacks_says_so(client, image_server):
    region = {"id": "r", "type": "rectangle", "from_name": "bbox", "to_name": "image",
              "original_width": 100, "original_height": 100, "item_index": 4,
              "value": {"x": 1, "y": 1, "width": 5, "height": 5, "rotation": 0}}  # fmt: skip
    body = pages_body([image_server.url("x.png")], interactive={"result": [region]})
    (prediction,) = client.post("/predict", json=body).json()["results"]
    assert "drawn on page 5 (item_index 4), but the task has 1 page(s)" in prediction["error"]
