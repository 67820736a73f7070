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
from typing import TYPE_CHECKING, Any

from ..settings import Settings
from .registry import ModelRegistry, ProjectModel, write_atomically

if TYPE_CHECKING:
    from .alphabet import RecogniserModel
    from .finetune import Outcome

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


def _fine_tune_here(
    settings: Settings,
    export: Path,
    model: RecogniserModel,
    out: Path,
    current: ProjectModel | None,
    epochs: int,
    progress: Callable[[float, str], None],
) -> tuple[Outcome, float | None]:
    """The fine-tuning in this process; with it, the serving model's held-out CER when
    one serves and the new model beat the stock one (else None)."""
    from ..ocr.weights import locate_weights
    from .finetune import fine_tune, held_out_cer

    stock = locate_weights(settings.lang_list, settings.model_dir, settings.model_download)[
        model.filename
    ]
    device = "cpu" if settings.device is None else settings.device
    outcome = fine_tune(
        export,
        stock,
        model,
        settings.lang_list,
        out,
        epochs=epochs,
        variants=settings.training_variants,
        device=device,
        progress=progress,
    )
    serving = None
    if current is not None and outcome.better:
        serving = held_out_cer(current.weights, export, model, settings.lang_list, device)
    return outcome, serving


def train_project(
    settings: Settings,
    project: int,
    *,
    epochs: int = EPOCHS,
    on_progress: Callable[[float, str], None] | None = None,
) -> tuple[dict[str, Any], ProjectModel | None]:
    """Train the project's recogniser once; its figures, and what serves it now if promoted.

    The fine-tuning runs in this process, or as a Ray task on RAY_ADDRESS's cluster
    (TRAINING_ON; training/cluster.py); either way the weights land in the registry here.
    Raises LabelStudioError, LabelConfigError, ValueError (nothing to learn from),
    ClusterUnreachable (the cluster does not answer, has no room, or lost the task)."""
    from .alphabet import recogniser_model
    from .export import export_with_settings

    assert settings.label_studio_host is not None
    registry = ModelRegistry(settings.model_dir, settings.label_studio_host)
    number = registry.next_number(project)
    progress = ProgressFile(progress_path(registry, project), project, number)

    def report(share: float, step: str) -> None:
        progress(share, step)
        if on_progress is not None:
            on_progress(share, step)

    def fine_tuning(share: float, step: str) -> None:
        report(0.05 + share * 0.9, step)

    model = recogniser_model(settings.lang_list)
    scratch = Path(tempfile.mkdtemp(prefix=".training-", dir=registry.folder(project)))
    try:
        if settings.trains_on_cluster:
            from ..ocr.cluster_actor import check_address

            check_address(settings)  # a cluster that does not answer: said before the export
        report(0.0, "exporting the annotations")
        manifest = asyncio.run(export_with_settings(settings, project, scratch / "export"))
        current = registry.current(project)
        out = registry.weights_path(project, number)
        if settings.trains_on_cluster:
            from .cluster import fine_tune_on_cluster

            outcome, serving = fine_tune_on_cluster(
                settings,
                scratch / "export",
                out,
                epochs=epochs,
                serving=current.weights if current is not None else None,
                progress=fine_tuning,
            )
        else:
            outcome, serving = _fine_tune_here(
                settings, scratch / "export", model, out, current, epochs, fine_tuning
            )
        figures: dict[str, Any] = {
            **asdict(outcome),
            "number": number,
            "left_out": manifest.left_out_counts,
            "tasks": manifest.tasks,
            "trained_on": "cluster" if settings.trains_on_cluster else "local",
        }
        better = outcome.better
        if current is not None and better and serving is not None:
            # Better than the stock model is not enough when a project model serves already.
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
