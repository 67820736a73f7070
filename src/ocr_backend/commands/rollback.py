"""`ocr-backend rollback --project ID`: serve the project's previous model again.

The model promoted before the current one serves the project (or the stock
model, when there was none); the rolled-back training's files and figures
stay in MODEL_DIR. A running service picks the change up at its next
request for the project, and `/setup` then answers the older model_version.
"""

from __future__ import annotations

import argparse
import sys

from .serve import load_settings

HELP = "serve a Label Studio project's previous fine-tuned model (or the stock one) again"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--project", type=int, required=True, metavar="ID", help="the Label Studio project id"
    )


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if settings is None:
        return 2
    if settings.label_studio_host is None:
        print(
            "ocr-backend rollback: set LABEL_STUDIO_HOST: trained models belong to one "
            "Label Studio and are kept under its URL",
            file=sys.stderr,
        )
        return 2
    from ..training.registry import ModelRegistry

    registry = ModelRegistry(settings.model_dir, settings.label_studio_host)
    before, now = registry.rollback(args.project)
    if before is None:
        print(f"project {args.project}: the stock model serves it already; nothing to roll back")
        return 1
    print(
        f"project {args.project}: {before.version} no longer serves it; now "
        + (now.version if now else "the stock model")
    )
    return 0
