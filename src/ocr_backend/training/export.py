"""A project's corrected regions -> training data that EasyOCR's trainer (and others) read.

The folder written (docs/training.md, "The export"):

    recogniser/train/labels.csv, recogniser/train/*.png   one straightened crop per line
    recogniser/val/...                                     the held-out tasks' lines
    detector/train/images/*.png, detector/train/gt/gt_*.txt  per page, ICDAR 2015 lines
    detector/val/...
    manifest.json                                          counts, missing characters, left out

`labels.csv` is EasyOCR's trainer's format (trainer/dataset.py reads it):
a `filename,words` header, then one line per crop, split at the first comma
and not quoted, so a transcription may hold commas and quotes as they are.
A detector ground-truth line is `x1,y1,x2,y2,x3,y3,x4,y4,text`, the corners
clockwise from the top-left, in pixels of the image as displayed (its EXIF
orientation applied, as Label Studio shows it).

The split is by task, never by line: lines of one photo look alike, and a
model tested on a neighbour of a line it learnt would look better than it
is. A task's side is a hash of its id, so it never changes as the project
grows: a task held out once is held out in every later training.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ..errors import TaskError
from ..images.crop import crop_region, region_bounds, within
from ..images.decode import decode_image
from ..label_studio.client import LabelStudioClient
from ..label_studio.config import OcrTargets, parse_label_config
from ..label_studio.session import open_label_studio
from ..label_studio.storage import LabelStudio, LabelStudioImageFetcher
from ..settings import Settings
from .alphabet import missing_characters, recogniser_model
from .annotations import (
    BAD_PAGE,
    IMAGE_FAILED,
    OFF_IMAGE,
    LeftOut,
    TextRegion,
    chosen_annotation,
    text_regions,
)

VALIDATION_SHARE = 0.2
TRAIN, VALIDATION = "train", "val"
FORMAT = 1


def split_of(task_id: int) -> str:
    """`train` or `val` for a task: a fixed fifth of task ids, by hash, are held out."""
    digest = hashlib.sha256(f"label-studio-task-{task_id}".encode()).digest()
    return VALIDATION if int.from_bytes(digest[:8], "big") / 2**64 < VALIDATION_SHARE else TRAIN


def _rank(task_id: int) -> int:
    return int.from_bytes(hashlib.sha256(f"label-studio-task-{task_id}".encode()).digest()[:8])


def split_tasks(task_ids: Iterable[int]) -> dict[int, str]:
    """Each task's side. With no task held out by the hash (a small project), the task
    nearest the line is: a model is never promoted without a held-out test."""
    ids = sorted(set(task_ids))
    sides = {task: split_of(task) for task in ids}
    if len(ids) >= 2 and VALIDATION not in sides.values():
        sides[min(ids, key=_rank)] = VALIDATION
    return sides


@dataclass
class Manifest:
    """What an export holds and what it left out: manifest.json."""

    project: int
    label_studio: str
    languages: list[str]
    recogniser: str
    format: int = FORMAT
    created: str = ""
    validation_share: float = VALIDATION_SHARE
    tasks: dict[str, int] = field(default_factory=lambda: {TRAIN: 0, VALIDATION: 0})
    tasks_without_annotation: int = 0
    lines: dict[str, int] = field(default_factory=lambda: {TRAIN: 0, VALIDATION: 0})
    pages: dict[str, int] = field(default_factory=lambda: {TRAIN: 0, VALIDATION: 0})
    # Characters the recogniser's alphabet lacks: each with how many lines hold it. Those
    # lines are exported as they are; the fine-tuning leaves them out and says so.
    missing_characters: dict[str, int] = field(default_factory=dict)
    left_out: list[dict[str, Any]] = field(default_factory=list)
    left_out_counts: dict[str, int] = field(default_factory=dict)

    def write(self, folder: Path) -> None:
        text = json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"
        (folder / "manifest.json").write_text(text, encoding="utf-8")

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        return cls(**json.loads((folder / "manifest.json").read_text(encoding="utf-8")))


@dataclass
class _Writer:
    """Files of one export, as they are written."""

    root: Path
    alphabet: str
    manifest: Manifest
    labels: dict[str, list[str]] = field(default_factory=lambda: {TRAIN: [], VALIDATION: []})
    missing: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        for side in (TRAIN, VALIDATION):
            (self.root / "recogniser" / side).mkdir(parents=True)
            (self.root / "detector" / side / "images").mkdir(parents=True)
            (self.root / "detector" / side / "gt").mkdir(parents=True)

    def page(
        self, side: str, task: int, page: int, image: np.ndarray, regions: Sequence[TextRegion]
    ) -> list[LeftOut]:
        """Write one page's crops and its detector ground truth; the regions left out."""
        height, width = image.shape[:2]
        left_out: list[LeftOut] = []
        quads: list[str] = []
        for number, region in enumerate(regions):
            crop = straightened(image, region.geometry)
            if crop is None:
                left_out.append(
                    LeftOut(
                        task, region.id, OFF_IMAGE, "the shape holds no pixels of the image", page
                    )
                )
                continue
            name = f"task{task}_p{page}_{number}.png"
            Image.fromarray(crop).save(self.root / "recogniser" / side / name)
            self.labels[side].append(f"{name},{region.text}")
            for char in missing_characters(region.text, self.alphabet):
                self.missing[char] += 1
            corners = quadrilateral(region.geometry, width, height)
            quads.append(",".join(str(round(c)) for xy in corners for c in xy) + f",{region.text}")
        if quads:
            stem = f"task{task}_p{page}"
            Image.fromarray(image).save(self.root / "detector" / side / "images" / f"{stem}.png")
            (self.root / "detector" / side / "gt" / f"gt_{stem}.txt").write_text(
                "\n".join(quads) + "\n", encoding="utf-8"
            )
            self.manifest.pages[side] += 1
            self.manifest.lines[side] += len(quads)
        return left_out

    def finish(self, left_out: list[LeftOut]) -> None:
        for side, lines in self.labels.items():
            (self.root / "recogniser" / side / "labels.csv").write_text(
                "filename,words\n" + "".join(f"{line}\n" for line in lines), encoding="utf-8"
            )
        self.manifest.missing_characters = dict(self.missing.most_common())
        self.manifest.left_out = [asdict(item) for item in left_out]
        self.manifest.left_out_counts = dict(Counter(item.reason for item in left_out))
        self.manifest.created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.manifest.write(self.root)


def straightened(image: np.ndarray, geometry: dict[str, Any]) -> np.ndarray | None:
    """The region's upright crop, without the margin crop_region adds: the annotator's box."""
    height, width = image.shape[:2]
    box = region_bounds(geometry, width, height)
    if box is None:
        return None
    left, top, right, bottom = box
    crop = crop_region(image[top:bottom, left:right], within(geometry, box, width, height))
    if crop is None:
        return None
    top, bottom, left, right = crop.drawn
    return np.ascontiguousarray(crop.image[top:bottom, left:right])


def quadrilateral(geometry: dict[str, Any], width: int, height: int) -> list[tuple[float, float]]:
    """Four corners in pixels, clockwise from the top-left: a rotated rectangle's own, or
    the smallest rotated rectangle around a polygon of more or fewer than four points."""
    if "points" in geometry:
        points = [(x / 100 * width, y / 100 * height) for x, y in geometry["points"]]
        if len(points) != 4:
            box = cv2.boxPoints(cv2.minAreaRect(np.array(points, dtype=np.float32)))
            points = [(float(x), float(y)) for x, y in box]
        # Clockwise from the corner nearest the top-left, as ICDAR 2015 lists them.
        cx, cy = sum(x for x, _ in points) / 4, sum(y for _, y in points) / 4
        points.sort(key=lambda p: math.atan2(p[1] - cy, p[0] - cx))
        start = min(range(4), key=lambda i: points[i][0] + points[i][1])
        return points[start:] + points[:start]
    x, y = geometry["x"] / 100 * width, geometry["y"] / 100 * height
    w, h = geometry["width"] / 100 * width, geometry["height"] / 100 * height
    angle = math.radians(geometry.get("rotation") or 0.0)
    cos, sin = math.cos(angle), math.sin(angle)
    return [
        (x + u * cos - v * sin, y + u * sin + v * cos) for u, v in ((0, 0), (w, 0), (w, h), (0, h))
    ]


def page_refs(data: dict[str, Any], targets: OcrTargets) -> list[Any]:
    value = data.get(targets.image_key)
    return value if isinstance(value, list) else [value]


async def export_project(
    project: int,
    out: Path,
    *,
    client: LabelStudioClient,
    fetcher: LabelStudioImageFetcher,
    label_studio: LabelStudio,
    languages: Sequence[str],
    alphabet: str,
    recogniser: str,
    max_pixels: int,
) -> Manifest:
    """Export a project into `out` (which must not exist yet, or be empty). Raises
    LabelStudioError when the project cannot be read, LabelConfigError when its label
    config has no OCR tags. Written beside `out` first, and moved there when whole."""
    await asyncio.to_thread(_check_empty, out)
    config = (await client.project(project)).get("label_config") or ""
    targets = parse_label_config(config)
    tasks = []
    without = 0
    async for task in client.project_tasks(project):
        annotation = chosen_annotation(task.raw.get("annotations") or [])
        if annotation is None:
            without += 1
        else:
            tasks.append((task, annotation))
    sides = split_tasks(task.id for task, _ in tasks)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    manifest = Manifest(project, label_studio.host or "", list(languages), recogniser)
    manifest.tasks_without_annotation = without
    writer = _Writer(partial, alphabet, manifest)
    left_out: list[LeftOut] = []
    for task, annotation in tasks:
        side = sides[task.id]
        regions, dropped = text_regions(task.id, annotation["result"])
        left_out.extend(dropped)
        refs = page_refs(task.data, targets)
        by_page: dict[int, list[TextRegion]] = {}
        for region in regions:
            if region.page >= len(refs):
                left_out.append(
                    LeftOut(
                        task.id,
                        region.id,
                        BAD_PAGE,
                        f"the task has {len(refs)} page(s)",
                        region.page,
                    )
                )
            else:
                by_page.setdefault(region.page, []).append(region)
        if by_page:
            manifest.tasks[side] += 1
        for page, on_page in sorted(by_page.items()):
            try:
                data = await fetcher.fetch(refs[page], task_id=task.id, label_studio=label_studio)
                image = np.asarray(
                    await asyncio.to_thread(decode_image, data, max_pixels=max_pixels)
                )
            except TaskError as exc:
                left_out.extend(
                    LeftOut(task.id, r.id, IMAGE_FAILED, str(exc), page) for r in on_page
                )
                continue
            left_out.extend(
                await asyncio.to_thread(writer.page, side, task.id, page, image, on_page)
            )
    await asyncio.to_thread(writer.finish, left_out)
    await asyncio.to_thread(_settle, partial, out)
    return manifest


def _check_empty(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} is not an empty folder: export into a new one")


def _settle(partial: Path, out: Path) -> None:
    """The whole export takes the name `out` in one step: a half-written one never does."""
    if out.exists():
        out.rmdir()
    os.replace(partial, out)


async def export_with_settings(settings: Settings, project: int, out: Path) -> Manifest:
    """Export with LABEL_STUDIO_HOST, its token and the fetch limits of the settings."""
    model = recogniser_model(settings.lang_list)
    async with open_label_studio(settings) as session:
        return await export_project(
            project,
            out,
            client=session.client,
            fetcher=session.fetcher,
            label_studio=session.label_studio,
            languages=settings.lang_list,
            alphabet=model.characters,
            recogniser=model.name,
            max_pixels=settings.max_image_pixels,
        )
