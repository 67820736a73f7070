"""`ocr-backend annotate --project ID`: pre-annotate a whole project, in this process.

For projects too large for one "Retrieve predictions": every task of the
project that lacks a prediction of the current model version is read and
its prediction written to Label Studio as soon as it is read. Label Studio
itself is the record of what is done, so a run that is interrupted (Ctrl-C,
SIGTERM, a crash) and started again continues where it stopped: the tasks
written meanwhile already have this model version and are skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from ..logs import configure_logging
from ..settings import Settings
from .serve import load_settings

if TYPE_CHECKING:  # the engine (torch, EasyOCR) is imported only when a run needs it
    from ..engine import Engine

HELP = "pre-annotate every task of a Label Studio project that lacks this model's prediction"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--project", type=int, required=True, metavar="ID", help="the Label Studio project id"
    )


@dataclass
class Summary:
    tasks: int = 0
    skipped: int = 0  # already had a prediction of this model version
    written: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # reason: count
    examples: dict[str, str] = field(default_factory=dict)  # reason: one message
    interrupted: bool = False
    seconds: float = 0.0

    def fail(self, reason: str, message: str) -> None:
        self.failed[reason] += 1
        self.examples.setdefault(reason, message)


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if settings is None:
        return 2
    configure_logging("WARNING" if settings.log_level == "INFO" else settings.log_level)
    if settings.label_studio_host is None or settings.label_studio_access_token is None:
        print(
            "ocr-backend annotate: set LABEL_STUDIO_HOST to Label Studio's URL and "
            "LABEL_STUDIO_ACCESS_TOKEN to a personal access token (Account & Settings > "
            "Personal Access Token)",
            file=sys.stderr,
        )
        return 2
    from ..engine import load_engine
    from ..errors import StartupError

    console = Console(stderr=True)
    try:
        with console.status("loading EasyOCR"):
            engine = load_engine(settings)
    except StartupError as exc:
        print(f"ocr-backend annotate: {exc}", file=sys.stderr)
        return 1
    try:
        summary = asyncio.run(annotate(settings, engine, args.project, console))
    finally:
        engine.close()
    return report(summary, args.project)


async def annotate(settings: Settings, engine: Engine, project: int, console: Console) -> Summary:
    from ..errors import LabelConfigError, LabelStudioError, TaskError
    from ..jobs.direct import DirectJobs
    from ..jobs.runner import read_bounded
    from ..label_studio.client import TaskSummary
    from ..label_studio.config import parse_label_config
    from ..label_studio.schemas import Task
    from ..label_studio.session import open_label_studio
    from ..predictor import PredictContext, Predictor
    from ..priority import Priority
    from ..training.trainer import Trainer

    summary = Summary()
    started = time.monotonic()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    async with open_label_studio(settings) as session:
        http, fetcher, client = session.http, session.fetcher, session.client
        label_studio = session.label_studio
        predictor = Predictor(engine, fetcher, settings)
        # A project with a promoted fine-tuned model is read with it (docs/training.md).
        predictor.project_models = Trainer(settings).model_for
        version = predictor.version_for(PredictContext(project=str(project)))
        try:
            config = (await client.project(project)).get("label_config") or ""
            targets = parse_label_config(config, settings.label_mappings)
            todo = []
            async for task in client.project_tasks(project):
                summary.tasks += 1
                if version in task.model_versions:
                    summary.skipped += 1
                else:
                    todo.append(task)
        except (LabelStudioError, LabelConfigError) as exc:
            console.print(f"[red]project {project}: {exc}[/red]")
            summary.fail("project", str(exc))
            return summary
        context = PredictContext(
            label_studio=label_studio, request_id=f"annotate:{project}", project=str(project)
        )
        # Each task claimed in the service's queue first: one the service has is left to it.
        shared = DirectJobs(
            settings, http, fetcher, project=project, model_version=version, label_config=config
        )

        async with shared:
            with Progress(
                TextColumn(f"project {project}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} images/s"),
                TimeRemainingColumn(),
                console=console,
            ) as bar:
                progress = bar.add_task("tasks", total=len(todo), rate="-")

                async def one(summary_task: TaskSummary) -> None:
                    if stopping.is_set():
                        return
                    task = Task.model_validate(summary_task.raw)
                    key = await shared.claim(task)
                    if key is None:  # the service has it, and delivers it
                        summary.skipped += 1
                        bar.update(progress, advance=1)
                        return
                    try:
                        prediction = await predictor.read_page(
                            task, targets, context, Priority.BULK
                        )
                    except asyncio.CancelledError:
                        await asyncio.shield(shared.put_back(key))
                        raise
                    except TaskError as exc:
                        summary.fail(exc.reason, f"task {task.id}: {exc}")
                        await shared.failed(key, exc.reason, str(exc))
                    except Exception as exc:  # a bug: counted and shown, the others go on
                        summary.fail("internal", f"task {task.id}: {type(exc).__name__}: {exc}")
                        await shared.failed(key, "internal", f"{type(exc).__name__}: {exc}")
                    else:
                        # Checked against Label Studio first, then written (jobs/write_back.py).
                        why_not = await shared.deliver(key, prediction.result, prediction.score)
                        if why_not is None:
                            summary.written += 1
                        else:
                            summary.fail("not_written", f"task {task.id}: {why_not}")
                    done = summary.written + sum(summary.failed.values())
                    rate = done / max(0.001, time.monotonic() - started)
                    bar.update(progress, advance=1, rate=f"{rate:.2f}")

                running: set[asyncio.Task[None]] = set()
                waiting = iter(todo)

                async def claim() -> TaskSummary | None:
                    return next(waiting, None)

                def start(summary_task: TaskSummary) -> asyncio.Task[None]:
                    job = asyncio.create_task(one(summary_task))
                    running.add(job)
                    job.add_done_callback(running.discard)
                    return job

                # The runner's loop: as many images in hand as the service holds, no more.
                await read_bounded(
                    claim, start, capacity=predictor.images_in_hand, stopping=stopping
                )
                # Images in flight finish and are written; nothing new starts after a stop.
                with contextlib.suppress(Exception):
                    await asyncio.gather(*running)
    summary.interrupted = stopping.is_set()
    summary.seconds = time.monotonic() - started
    return summary


def report(summary: Summary, project: int) -> int:
    failed = sum(summary.failed.values())
    lines = [
        f"project {project}: {summary.tasks} task(s); {summary.skipped} already had this "
        f"model's prediction; {summary.written} written; {failed} failed; "
        f"in {summary.seconds:.1f} s"
        + (
            f" ({summary.written / summary.seconds:.2f} images/s)"
            if summary.seconds and summary.written
            else ""
        )
    ]
    for reason, count in summary.failed.most_common():
        lines.append(f"  failed ({reason}): {count}, e.g. {summary.examples[reason]}")
    if summary.interrupted:
        lines.append("interrupted: run the same command again to go on where it stopped")
    print("\n".join(lines))
    if summary.interrupted:
        return 130
    return 1 if failed else 0
