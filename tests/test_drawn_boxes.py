"""A drawn box is never read worse than EasyOCR's `readtext` reads the same crop saved as a file.

Boxes drawn as people draw them (tests/support/drawn_boxes.py: tight, loose,
cutting into a neighbour, rotated, polygons) around lines `readtext` finds on
real photos (tests/images/) and on sign photos made here (tests/support/signs.py),
sent to the service as Label Studio sends them. `python -m bench.interactive`
runs the same harness on every line; here a sample of lines keeps it to a
minute or so.
"""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from ocr_backend.ocr.lines import TextLine, to_text_line
from ocr_backend.ocr.local import LocalEngine
from tests.support.drawn_boxes import (
    Box,
    PageLine,
    all_boxes,
    draw_boxes,
    make_pages,
    measure,
    page_lines,
    report,
)
from tests.support.label_studio import ls_predict_body
from tests.support.signs import MADE

# The made sign photos and the diagram: small pages, so readtext on each is quick; the
# street signs' collage and the screenshot (large pages) are in the full harness.
# readtext on six pages and about 100 readings of boxes: a minute on a quiet machine,
# several beside other work, so past the suite's 300 s per test.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # runs long: not in `make test-fast`
SAMPLE_PAGES = ("diagram_white_on_colour.jpeg", *MADE)
SAMPLE_EVERY = 6  # every sixth confident line of each: 40 boxes (all of them: bench.interactive)
MOST_LOST = 0.2  # CER: no box may read worse than readtext on its crop by more


@pytest.fixture(scope="module")
def pages(image_server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    made = make_pages(tmp_path_factory.mktemp("drawn-boxes"))
    for name, path in made.items():
        shutil.copy(path, image_server.root / name)
    return made


@pytest.fixture(scope="module")
def readtext(engine: LocalEngine):
    @cache
    def read(path: Path) -> list[TextLine]:
        # On the engine's own thread: a reader is fast only in the thread that built it.
        found = engine._pool.submit(engine.reader.easyocr.readtext, str(path)).result()
        return [to_text_line(box, str(text).strip(), score) for box, text, score in found]

    return read


@pytest.fixture(scope="module")
def service(client, image_server):
    def read(page: str, region: dict[str, Any]) -> tuple[str, float]:
        body = ls_predict_body(image_server.url(page))
        body["params"]["context"] = {"result": [region]}
        response = client.post("/predict", json=body)
        assert response.status_code == 200, response.text
        items = response.json()["results"][0]["result"]
        return next(i["value"]["text"][0] for i in items if i["type"] == "textarea"), 0.0

    return read


def test_no_drawn_box_reads_worse_than_readtext_on_its_crop(pages, readtext, service, tmp_path):
    sample = {name: pages[name] for name in SAMPLE_PAGES}
    boxes = all_boxes(sample, readtext, every=SAMPLE_EVERY)
    cases = measure(boxes, pages, tmp_path, readtext, service)
    summary = report(cases)
    print(summary)
    service_mean = sum(case.service_cer for case in cases) / len(cases)
    readtext_mean = sum(case.readtext_cer for case in cases) / len(cases)
    assert service_mean <= readtext_mean, summary
    assert max(case.loss for case in cases) <= MOST_LOST, summary


def _box(pages, readtext, page: str, text: str, kind: str) -> Box:
    """The `kind` box drawn around the line of `page` that readtext reads as `text`."""
    lines = page_lines(readtext(pages[page]))
    line: PageLine = next(line for line in lines if line.text == text)
    with Image.open(pages[page]) as image:
        size = image.size
    return next(box for box in draw_boxes(page, line, lines, size, 0) if box.kind == kind)


@pytest.mark.parametrize("text", ["Palais du LOUVRE", "Musee du LOUVRE"])
def test_a_framed_sign_with_a_pictogram_reads_as_its_words(pages, readtext, service, text):
    """White on a dark sign in a white frame, an arrow or a walking figure at one end:
    the service once read `Eeawn atoonz _` where readtext on the crop read the words."""
    box = _box(pages, readtext, "made_street_signs.jpeg", text, "loose")
    assert service(box.page, box.region)[0] == text


def test_a_bullet_icon_before_a_line_is_not_read_as_a_character(pages, readtext, service):
    """A filled dot before `Wash your hands often` was read as `;`."""
    box = _box(pages, readtext, "made_bulleted_notice.png", "Wash your hands often", "loose")
    assert service(box.page, box.region)[0] == "Wash your hands often"


def test_a_frame_edge_inside_the_box_is_not_read_as_a_letter(pages, readtext, service):
    """A polygon around `SPEEDI SLOW` takes in the yellow sign's black frame beside the
    last word: the frame's edge was read as a letter (`SPEEDI SLOW |`)."""
    box = _box(pages, readtext, "made_road_signs.jpeg", "SPEEDI SLOW", "polygon")
    assert service(box.page, box.region)[0] == "SPEEDI SLOW"


@pytest.mark.parametrize(
    ("page", "text", "kind"),
    [
        # Reaching down into the first line of the notice: `HEALTH NOTIC` lost its E.
        ("made_bulleted_notice.png", "HEALTH NOTICE", "cut"),
        # Tight on the line: the last letter touches the box's right edge.
        ("made_road_signs.jpeg", "SPEEDI SLOW", "tight"),
    ],
)
def test_the_last_letter_at_the_boxs_edge_is_read(pages, readtext, service, page, text, kind):
    box = _box(pages, readtext, page, text, kind)
    assert service(box.page, box.region)[0] == text
