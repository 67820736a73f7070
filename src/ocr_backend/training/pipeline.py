"""One training of one project, start to end: export, fine-tune, measure, promote or not.

`ocr-backend train` runs it in its own process; the service starts that
process for START_TRAINING and /train (training/trainer.py). Its progress is
a small file beside the project's models (`progress.json`) that /jobs reads:
the process writes, the service only reads, so neither waits on the other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..settings import Settings
from .registry import ModelRegistry, ProjectModel, write_atomically

log = logging.getLogger(__name__)

PROGRESS = "progress.json"
EPOCHS = 30  # measured: bench/train.py (docs/training.md, "What it costs")


def progress_path(registry: ModelRegistry, project: int) -> Path:
    return registry.folder(project) / PROGRESS


def read_progress(path: Path) -> dict[str, Any] | None:
    try:
        found = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return found if isinstance(found, dict) else None


class ProgressFile:
    """What a training is doing, written whole each time (the service reads it for /jobs)."""

    def __init__(self, path: Path, project: int, number: int) -> None:
        self.path = path
        self.state: dict[str, Any] = {
            "project": project,
            "training": number,
            "state": "running",
            "pid": os.getpid(),
            "started": time.time(),
            "updated": time.time(),
            "done": 0.0,
            "step": "starting",
        }
        self.write()

    def write(self) -> None:
        write_atomically(self.path, json.dumps(self.state, ensure_ascii=False).encode())

    def __call__(self, share: float, step: str) -> None:
        self.state.update(done=round(share, 4), step=step, updated=time.time())
        self.write()
        log.info(
            "training project %s #%s: %.0f%% %s",
            self.state["project"],
            self.state["training"],
            share * 100,
            step,
        )

    def finish(self, state: str, **figures: Any) -> None:
        self.state.update(state=state, updated=time.time(), **figures)
        self.write()


def stock_version(settings: Settings) -> str:
    """The stock model's version, as the service's predictions carry it."""
    from typing import cast

    from ..engine import Engine
    from ..ocr.easyocr_reader import NAME, easyocr_version
    from ..predictor import model_version

    engine = SimpleNamespace(name=NAME, version=easyocr_version())
    return model_version(settings, cast(Engine, engine))


def train_project(
    settings: Settings,
    project: int,
    *,
    epochs: int = EPOCHS,
    on_progress: Callable[[float, str], None] | None = None,
) -> tuple[dict[str, Any], ProjectModel | None]:
    """Train the project's recogniser once; its figures, and what serves it now if promoted.
    Raises LabelStudioError, LabelConfigError, ValueError (nothing to learn from)."""
    from ..ocr.weights import locate_weights
    from .alphabet import recogniser_model
    from .export import export_with_settings
    from .finetune import cer, fine_tune, load_lines, read_lines

    assert settings.label_studio_host is not None
    registry = ModelRegistry(settings.model_dir, settings.label_studio_host)
    number = registry.next_number(project)
    progress = ProgressFile(progress_path(registry, project), project, number)

    def report(share: float, step: str) -> None:
        progress(share, step)
        if on_progress is not None:
            on_progress(share, step)

    model = recogniser_model(settings.lang_list)
    stock = locate_weights(settings.lang_list, settings.model_dir, settings.model_download)[
        model.filename
    ]
    device = "cpu" if settings.device is None else settings.device
    scratch = Path(tempfile.mkdtemp(prefix=".training-", dir=registry.folder(project)))
    try:
        report(0.0, "exporting the annotations")
        manifest = asyncio.run(export_with_settings(settings, project, scratch / "export"))
        current = registry.current(project)

        def fine_tuning(share: float, step: str) -> None:
            report(0.05 + share * 0.9, step)

        outcome = fine_tune(
            scratch / "export",
            stock,
            model,
            settings.lang_list,
            registry.weights_path(project, number),
            epochs=epochs,
            variants=settings.training_variants,
            device=device,
            progress=fine_tuning,
        )
        figures: dict[str, Any] = {
            **asdict(outcome),
            "number": number,
            "left_out": manifest.left_out_counts,
            "tasks": manifest.tasks,
        }
        better = outcome.better
        if current is not None and better:
            # Better than the stock model is not enough when a project model serves already.
            held_out = load_lines(scratch / "export" / "recogniser" / "val", model.characters)
            truth = [line.text for line in held_out.lines]
            serving = cer(
                read_lines(current.weights, settings.lang_list, held_out.lines, device), truth
            )
            figures["cer_serving"] = serving
            if outcome.cer_after >= serving:
                better = False
                figures["reason"] = (
                    f"not better than training {current.number}, which serves: held-out CER "
                    f"{serving:.3f} -> {outcome.cer_after:.3f}"
                )
        promoted = registry.record(project, number, figures, better, stock_version(settings))
        progress.finish(
            "promoted" if promoted else "kept_aside",
            done=1.0,
            step=figures["reason"],
            version=promoted.version if promoted else None,
            cer_before=outcome.cer_before,
            cer_after=outcome.cer_after,
        )
        log.info(
            "training project %s #%s: %s; %s",
            project,
            number,
            figures["reason"],
            f"serving {promoted.version}" if promoted else "kept aside, not served",
        )
        return figures, promoted
    except BaseException as exc:
        progress.finish("failed", step=f"{type(exc).__name__}: {exc}"[:500])
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
