"""`ocr-backend train --project ID`: fine-tune the recogniser on a project's corrections, once.

Exports the project from LABEL_STUDIO_HOST, fine-tunes EasyOCR's recogniser
for LANG_LIST from the stock weights, measures the held-out tasks before and
after, and serves the result to that project only if it reads them better
(training/pipeline.py). Runs at low priority with TRAINING_THREADS torch
threads, so a service on the same machine keeps answering annotators first;
the service starts this same command for Label Studio's "Start Training".
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys

from ..settings import Settings
from .export import needs_label_studio
from .serve import load_settings

HELP = "fine-tune the recogniser on a Label Studio project's corrections (served if better)"
NICENESS = 10  # below the service: annotators' requests first


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--project", type=int, required=True, metavar="ID", help="the Label Studio project id"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        metavar="N",
        help="passes over the training lines (default: TRAINING_EPOCHS)",
    )


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if settings is None or not needs_label_studio(settings, "train"):
        return 2
    from ..logs import configure_logging

    configure_logging(settings.log_level)
    os.nice(NICENESS)
    import torch

    torch.set_num_threads(settings.training_threads)
    from ..training.registry import ModelRegistry

    assert settings.label_studio_host is not None
    lock = ModelRegistry(settings.model_dir, settings.label_studio_host).root / "training.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as held:
        # One training at a time on this MODEL_DIR, from every worker and every shell.
        fcntl.flock(held, fcntl.LOCK_EX)
        return _train(settings, args)


def _train(settings: Settings, args: argparse.Namespace) -> int:
    from ..errors import LabelConfigError, LabelStudioError, StartupError
    from ..training.pipeline import train_project

    try:
        figures, promoted = train_project(
            settings, args.project, epochs=args.epochs or settings.training_epochs
        )
    except (LabelStudioError, LabelConfigError, StartupError, ValueError) as exc:
        print(f"ocr-backend train: project {args.project}: {exc}", file=sys.stderr)
        return 1
    print(
        f"project {args.project}, training {figures['number']}: {figures['train_lines']} "
        f"lines learnt, {figures['validation_lines']} held out; {figures['reason']}; "
        + (f"serving {promoted.version}" if promoted else "kept aside, not served")
    )
    if figures["missing_characters"]:
        print(
            "characters the recogniser cannot write, lines left out: "
            + json.dumps(figures["missing_characters"], ensure_ascii=False)
        )
    return 0
