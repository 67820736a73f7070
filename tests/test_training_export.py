"""`ocr-backend export`: a project's corrections, fetched from a Label Studio on 127.0.0.1
with annotations as Label Studio 1.23.2 stores them, written as training data that a
reader knowing only the format can load."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ocr_backend.training.export import split_tasks
from tests.support.environment import with_source_path, without_service_variables
from tests.support.label_studio import OCR_TEMPLATE
from tests.support.label_studio_api import LabelStudioApi
from tests.support.meter_displays import (
    annotation_result,
    fonts_missing,
    meter_photo,
    rotated_corners,
)

pytestmark = [
    pytest.mark.slow,  # each export is an `ocr-backend export` process
    pytest.mark.timeout(900),
    pytest.mark.skipif(fonts_missing() is not None, reason=str(fonts_missing())),
]

MULTI_PAGE = """<View>
  <Image name="image" valueList="$pages"/>
  <Labels name="label" toName="image"><Label value="Text"/></Labels>
  <Rectangle name="bbox" toName="image"/>
  <Polygon name="poly" toName="image"/>
  <TextArea name="transcription" toName="image" perRegion="true" editable="true"/>
</View>"""


def textarea(region_id: str, value: dict, text: list[str], **extra) -> dict:
    return {
        "id": region_id,
        "from_name": "transcription",
        "to_name": "image",
        "type": "textarea",
        "original_width": 400,
        "original_height": 300,
        "value": {**value, "text": text},
        **extra,
    }


def shape(region_id: str, value: dict, kind: str = "rectangle", **extra) -> dict:
    return {
        "id": region_id,
        "from_name": "poly" if kind == "polygon" else "bbox",
        "to_name": "image",
        "type": kind,
        "original_width": 400,
        "original_height": 300,
        "value": value,
        **extra,
    }


@pytest.fixture
def label_studio():
    server = LabelStudioApi(storage_url="http://127.0.0.1:9")
    yield server
    server.close()


def build_project(server: LabelStudioApi) -> dict[str, object]:
    """Project 5: twelve photographed displays, one with several annotations, a few
    regions that cannot be used; project 6: a document of two pages."""
    server.add_project(5, OCR_TEMPLATE)
    expected: dict[str, object] = {"lines": {}}
    for number in range(12):
        photo = meter_photo(seed=100 + number, lines=3)
        name = f"upload/5/meter-{number}.jpg"
        if number % 3 == 0:  # local files storage answers JWTs only
            server.local_files[f"meters/{number}.jpg"] = photo.jpeg
            ref = f"/data/local-files/?d=meters/{number}.jpg"
        else:
            server.uploads[name] = photo.jpeg
            ref = f"/data/{name}"
        task = server.add_task(5, {"ocr": ref}, {"result": annotation_result(photo)})
        expected["lines"][task] = [line.text for line in photo.lines]  # type: ignore[index]
        expected.setdefault("photo", photo)
    # Several annotations: the ground truth wins over a newer one; a cancelled one never counts.
    photo = meter_photo(seed=500, lines=2)
    server.uploads["upload/5/several.jpg"] = photo.jpeg
    wrong = annotation_result(photo)
    for item in wrong:
        if item["type"] == "textarea":
            item["value"]["text"] = ["WRONG"]
    several = server.add_task(
        5,
        {"ocr": "/data/upload/5/several.jpg"},
        {"result": wrong, "updated_at": "2026-11-25T10:00:00Z"},
        {"result": annotation_result(photo), "ground_truth": True},
        {"result": wrong, "was_cancelled": True, "updated_at": "2026-11-26T10:00:00Z"},
    )
    expected["lines"][several] = [line.text for line in photo.lines]  # type: ignore[index]
    # The newest submitted one, when none is ground truth; the skipped one is newer still.
    photo = meter_photo(seed=501, lines=2)
    server.uploads["upload/5/newest.jpg"] = photo.jpeg
    newest = server.add_task(
        5,
        {"ocr": "/data/upload/5/newest.jpg"},
        {"result": wrong, "updated_at": "2026-11-24T10:00:00Z"},
        {"result": annotation_result(photo), "updated_at": "2026-11-25T10:00:00Z"},
        {"result": [], "was_cancelled": True, "updated_at": "2026-11-27T10:00:00Z"},
    )
    expected["lines"][newest] = [line.text for line in photo.lines]  # type: ignore[index]
    # Regions that cannot teach the recogniser, and a polygon that can; one with a
    # degree sign, which english_g2 cannot write.
    blank = Image.new("RGB", (400, 300), "white")
    draw_text_on(blank, "POLY 42", (40, 40))
    draw_text_on(blank, "23.5°C", (40, 140))
    buffer = io.BytesIO()
    blank.save(buffer, "PNG")
    server.uploads["upload/5/odd.png"] = buffer.getvalue()
    box = {"x": 8, "y": 42, "width": 40, "height": 16, "rotation": 0}
    polygon = {"points": [[8, 10], [50, 10], [50, 26], [8, 26]]}
    odd = server.add_task(
        5,
        {"ocr": "/data/upload/5/odd.png"},
        {
            "result": [
                shape("poly", polygon, "polygon"),
                textarea("poly", polygon, ["POLY 42"]),
                shape("degrees", box),
                textarea("degrees", box, ["23.5°C"]),
                shape("empty", box),
                textarea("empty", box, ["  "]),
                shape("two", box),
                textarea("two", box, ["FIRST LINE\nSECOND LINE"]),
                textarea("floating", box | {"x": 60}, ["NO SHAPE"])
                | {"value": {"text": ["NO SHAPE"]}},
                shape("outside", {"x": 150, "y": 150, "width": 10, "height": 10, "rotation": 0}),
                textarea("outside", {}, ["GONE"]),
            ]
        },
    )
    expected["lines"][odd] = ["POLY 42", "23.5°C"]  # type: ignore[index]
    expected["odd"] = odd
    expected["unannotated"] = server.add_task(5, {"ocr": "/data/upload/5/odd.png"})
    # A document of two pages: the region on the second page is cut from the second page.
    server.add_project(6, MULTI_PAGE)
    first, second = meter_photo(seed=600, lines=2), meter_photo(seed=601, lines=2)
    server.uploads["upload/6/p1.jpg"] = first.jpeg
    server.uploads["upload/6/p2.jpg"] = second.jpeg
    server.add_task(
        6,
        {"pages": ["/data/upload/6/p1.jpg", "/data/upload/6/p2.jpg"]},
        {"result": annotation_result(second, item_index=1)},
    )
    expected["second_page"] = second
    return expected


def draw_text_on(image: Image.Image, text: str, at: tuple[int, int]) -> None:
    from PIL import ImageDraw

    from tests.support.drawing import font

    ImageDraw.Draw(image).text(at, text, font=font(32), fill="black")


def export(
    server: LabelStudioApi, project: int, out: Path, tmp_path: Path
) -> subprocess.CompletedProcess:
    environ = without_service_variables()
    environ |= {
        "LABEL_STUDIO_HOST": server.host,
        "LABEL_STUDIO_ACCESS_TOKEN": server.personal_access_token,
        "LANG_LIST": "en",
        "MODEL_DIR": str(tmp_path / "models"),
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ocr_backend",
            "export",
            "--project",
            str(project),
            "--out",
            str(out),
        ],
        env=with_source_path(environ),
        capture_output=True,
        text=True,
        timeout=300,
    )


def read_labels(folder: Path) -> list[tuple[str, str]]:
    """EasyOCR's trainer's labels.csv as a reader knowing only the format loads it: a
    `filename,words` header, each line split at its first comma."""
    lines = (folder / "labels.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "filename,words"
    return [tuple(line.split(",", 1)) for line in lines[1:]]  # type: ignore[misc]


def test_export_writes_crops_labels_detector_pages_and_a_manifest(label_studio, tmp_path):
    expected = build_project(label_studio)
    out = tmp_path / "export"
    done = export(label_studio, 5, out, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "characters the english_g2 recogniser cannot write: '°'" in done.stdout

    manifest = json.loads((out / "manifest.json").read_text())
    sides = split_tasks(expected["lines"])  # type: ignore[arg-type]
    read: dict[int, list[str]] = {}
    for side in ("train", "val"):
        rows = read_labels(out / "recogniser" / side)
        assert len(rows) == manifest["lines"][side]
        for filename, words in rows:
            crop = np.asarray(Image.open(out / "recogniser" / side / filename))
            # A straightened line: wider than tall, and holding ink (not a blank cut).
            assert crop.shape[1] > crop.shape[0] > 10, filename
            assert crop.std() > 10, filename
            task = int(filename.removeprefix("task").split("_")[0])
            assert sides[task] == side, "a task's lines all fall on one side"
            read.setdefault(task, []).append(words)
    assert {task: sorted(lines) for task, lines in read.items()} == {
        task: sorted(lines)  # type: ignore[call-overload]
        for task, lines in expected["lines"].items()  # type: ignore[attr-defined]
    }
    assert manifest["lines"]["val"] > 0 and manifest["lines"]["train"] > 0
    assert manifest["tasks_without_annotation"] == 1
    assert manifest["missing_characters"] == {"°": 1}
    odd = expected["odd"]
    assert sorted((r["region"], r["reason"]) for r in manifest["left_out"]) == [
        ("empty", "no_text"),
        ("floating", "no_shape"),
        ("outside", "off_image"),
        ("two", "several_lines"),
    ]
    assert all(r["task"] == odd for r in manifest["left_out"])

    # The detector's pages: the image as displayed and its quadrilaterals with their text.
    photo = expected["photo"]
    first = min(expected["lines"])  # type: ignore[type-var]
    side = sides[first]
    gt = (out / "detector" / side / "gt" / f"gt_task{first}_p0.txt").read_text().splitlines()
    page = Image.open(out / "detector" / side / "images" / f"task{first}_p0.png")
    assert page.size == photo.size  # type: ignore[attr-defined]
    for line, drawn in zip(gt, photo.lines, strict=True):  # type: ignore[attr-defined]
        fields = line.split(",", 8)
        corners = [float(v) for v in fields[:8]]
        wanted = [c for xy in rotated_corners(drawn.geometry, page.size) for c in xy]
        assert max(abs(a - b) for a, b in zip(corners, wanted, strict=True)) <= 1.0
        assert fields[8] == drawn.text

    # Deterministic: the same project exports the same files.
    again = export(label_studio, 5, tmp_path / "again", tmp_path)
    assert again.returncode == 0, again.stderr
    for side in ("train", "val"):
        assert (out / "recogniser" / side / "labels.csv").read_bytes() == (
            tmp_path / "again" / "recogniser" / side / "labels.csv"
        ).read_bytes()


def test_a_region_on_the_second_page_is_cut_from_the_second_page(label_studio, tmp_path):
    expected = build_project(label_studio)
    out = tmp_path / "document"
    done = export(label_studio, 6, out, tmp_path)
    assert done.returncode == 0, done.stderr
    rows = read_labels(out / "recogniser" / "train") + read_labels(out / "recogniser" / "val")
    second = expected["second_page"]
    assert sorted(words for _, words in rows) == sorted(line.text for line in second.lines)  # type: ignore[attr-defined]
    assert all("_p1_" in filename for filename, _ in rows)


def test_export_refuses_a_folder_in_use_and_says_what_is_wrong(label_studio, tmp_path):
    build_project(label_studio)
    out = tmp_path / "used"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    done = export(label_studio, 5, out, tmp_path)
    assert done.returncode == 1
    assert "not an empty folder" in done.stderr
    assert (out / "keep.txt").read_text() == "mine"
    missing = export(label_studio, 99, tmp_path / "none", tmp_path)
    assert missing.returncode == 1 and "HTTP 404" in missing.stderr


def test_the_split_is_by_task_deterministic_and_never_without_a_held_out_task():
    sides = split_tasks(range(1, 501))
    assert sides == split_tasks(reversed(range(1, 501)))
    held_out = sum(side == "val" for side in sides.values())
    assert 70 < held_out < 130  # a fifth of 500
    # A task keeps its side as the project grows.
    assert {t: s for t, s in split_tasks(range(1, 1001)).items() if t <= 500} == sides
    assert "val" in split_tasks([1, 2]).values()
