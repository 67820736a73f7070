"""`ocr-backend export --project ID --out DIR`: a project's corrections as training data.

What the folder holds is in training/export.py and docs/training.md; the
annotations are fetched from LABEL_STUDIO_HOST with LABEL_STUDIO_ACCESS_TOKEN,
and the images as the service fetches them (uploads, local files, cloud
storage, URLs), with the same token rules.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from ..settings import Settings
from .serve import load_settings

HELP = "export a Label Studio project's corrected text regions as training data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--project", type=int, required=True, metavar="ID", help="the Label Studio project id"
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="a new (or empty) folder to write"
    )


def needs_label_studio(settings: Settings, command: str) -> bool:
    """Whether the settings name a Label Studio and a token; says what to set when not."""
    if settings.label_studio_host is None or settings.label_studio_access_token is None:
        print(
            f"ocr-backend {command}: set LABEL_STUDIO_HOST to Label Studio's URL and "
            "LABEL_STUDIO_ACCESS_TOKEN to a personal access token (Account & Settings > "
            "Personal Access Token)",
            file=sys.stderr,
        )
        return False
    return True


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if settings is None or not needs_label_studio(settings, "export"):
        return 2
    from ..errors import LabelConfigError, LabelStudioError
    from ..training.export import export_with_settings

    try:
        manifest = asyncio.run(export_with_settings(settings, args.project, args.out))
    except (LabelStudioError, LabelConfigError, FileExistsError) as exc:
        print(f"ocr-backend export: project {args.project}: {exc}", file=sys.stderr)
        return 1
    print(
        f"project {args.project}: {manifest.lines['train']} training and {manifest.lines['val']} "
        f"validation line(s) from {manifest.tasks['train']} + {manifest.tasks['val']} task(s) "
        f"in {args.out}; {len(manifest.left_out)} region(s) left out"
        + (
            f" ({', '.join(f'{r}: {n}' for r, n in manifest.left_out_counts.items())})"
            if manifest.left_out
            else ""
        )
    )
    if manifest.missing_characters:
        shown = "".join(manifest.missing_characters)
        print(
            f"characters the {manifest.recogniser} recogniser cannot write: {shown!r} "
            "(lines with them are exported, and left out of fine-tuning)"
        )
    return 0
