"""The `ocr-backend` command. With no subcommand it serves, as `ocr-backend serve` does.

Each subcommand is a module of `commands/` with HELP, `add_arguments(parser)`
and `run(args) -> exit status`; add one by adding it to COMMANDS.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from .commands import annotate, export, pdf_to_tasks, rollback, serve, train

COMMANDS: dict[str, ModuleType] = {
    "serve": serve,
    "annotate": annotate,
    "pdf-to-tasks": pdf_to_tasks,
    "export": export,
    "train": train,
    "rollback": rollback,
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="ocr-backend",
        description="Label Studio ML backend that pre-annotates text in images with EasyOCR. "
        "Configured by environment variables (see the README).",
    )
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        sub = commands.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return COMMANDS[args.command or "serve"].run(args)


if __name__ == "__main__":
    sys.exit(main())
