"""Training in the background of the service: one `ocr-backend train` process at a time.

"Start Training" (the START_TRAINING webhook) and the legacy `/train` are
answered at once with a job id; the training runs as a child process at low
OS priority (`nice` 10) with TRAINING_THREADS torch threads, so annotators'
requests and `/health` are never held behind it, and its memory is its own:
when it ends, all of it goes back. Further requests wait in line, one per
project. The child writes its progress to a file (training/pipeline.py);
the service only reads it, for /jobs and the metrics.

A restart loses nothing that was served and serves nothing half-written:
weights are written whole and served only once `current.json` names them.
A training whose process is gone (the service or the machine stopped) is
started again from the beginning when the service starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import sys
import time
from collections import deque
from typing import Any

from ..metrics import TRAINING_CER, TRAINING_DONE
from ..processes import pid_alive
from ..settings import Settings
from .pipeline import PROGRESS, read_progress
from .registry import ModelRegistry, ProjectModel, project_id

__all__ = ["Trainer", "project_id", "settings_environment"]

log = logging.getLogger(__name__)


def alive(pid: Any) -> bool:
    """Whether a training's recorded pid (any JSON value) is a live process here."""
    return isinstance(pid, int) and pid > 0 and pid_alive(pid)


def settings_environment(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process these same settings."""
    from pydantic import SecretStr

    environ: dict[str, str] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, tuple | list):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, dict):
            value = ",".join(f"{k}={v}" for k, v in value.items())
        environ[name.upper()] = str(value)
    return environ


class Trainer:
    """Starts trainings, one at a time, and says which model serves each project."""

    def __init__(self, settings: Settings, environ: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.environ = environ
        self.registry = (
            ModelRegistry(settings.model_dir, settings.label_studio_host)
            if settings.label_studio_host
            else None
        )
        self.waiting: deque[int] = deque()
        self.running: tuple[int, subprocess.Popen[bytes]] | None = None
        self._watch: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> str | None:
        """Why training cannot run here, or None when it can."""
        if self.registry is None or self.settings.label_studio_access_token is None:
            return (
                "training needs LABEL_STUDIO_HOST and LABEL_STUDIO_ACCESS_TOKEN: the backend "
                "fetches the project's annotations itself through Label Studio's API"
            )
        return None

    def model_for(self, project: int | str | None) -> ProjectModel | None:
        """The fine-tuned model serving `project` (an id, or `"7.1763892800"` as Label Studio
        names it); None: the stock one."""
        number = project_id(project)
        if self.registry is None or number is None:
            return None
        return self.registry.current(number)

    def start(self, project: int) -> tuple[str, str]:
        """(job id, what happened: started, queued, already running or queued)."""
        job = f"training-project-{project}"
        if self.running is not None and self.running[0] == project:
            return job, "already running"
        if project in self.waiting:
            return job, "already queued"
        self.waiting.append(project)
        if self.running is None:
            self._next()
            return job, "started"
        return job, "queued"

    def resume(self) -> None:
        """After a restart: a training whose process is gone starts again, from the beginning;
        what it left half-done (its scratch folder, a .tmp file) is removed."""
        if self.registry is None or not self.registry.root.is_dir():
            return
        for folder in sorted(self.registry.root.iterdir()):
            if not folder.name.isdigit():
                continue
            for leftover in folder.glob(".training-*"):
                shutil.rmtree(leftover, ignore_errors=True)
            for leftover in folder.glob(".*.tmp"):
                leftover.unlink(missing_ok=True)
            progress = read_progress(folder / PROGRESS)
            if progress and progress.get("state") == "running" and not alive(progress.get("pid")):
                # Every worker process resumes at start-up; the first to claim it restarts it.
                claim = folder / f"resumed-{progress.get('training')}"
                try:
                    os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    continue
                log.warning(
                    "training project %s #%s stopped before it ended (at %s); starting it again",
                    folder.name,
                    progress.get("training"),
                    progress.get("step"),
                )
                self.start(int(folder.name))

    def _next(self) -> None:
        if not self.waiting:
            return
        project = self.waiting.popleft()
        command = [sys.executable, "-m", "ocr_backend", "train", "--project", str(project)]
        # The service's own settings, whatever they came from; PATH, HOME and the rest too.
        environ = {**os.environ, **(self.environ or {}), **settings_environment(self.settings)}
        log.info("training project %s: starting `%s`", project, " ".join(command[1:]))
        child = subprocess.Popen(  # noqa: S603 - our own command, no shell
            command, env=environ, stdin=subprocess.DEVNULL, start_new_session=True
        )
        self.running = (project, child)
        with contextlib.suppress(RuntimeError):  # no event loop: the caller polls `poll()`
            self._watch = asyncio.get_running_loop().create_task(self._wait(child))

    async def _wait(self, child: subprocess.Popen[bytes]) -> None:
        code = await asyncio.to_thread(child.wait)
        self._ended(code)

    def _ended(self, code: int) -> None:
        if self.running is None:
            return
        project, _ = self.running
        log.log(
            logging.INFO if code == 0 else logging.WARNING,
            "training project %s: process ended with status %s",
            project,
            code,
        )
        self.running = None
        self._next()

    def trainings(self) -> list[dict[str, Any]]:
        """Each project's latest training, as its process last wrote it, for /jobs."""
        if self.registry is None or not self.registry.root.is_dir():
            return []
        found = []
        for folder in sorted(self.registry.root.iterdir()):
            if not folder.name.isdigit():
                continue  # training.lock
            progress = read_progress(folder / PROGRESS)
            if progress is None:
                continue
            if progress.get("state") == "running" and not alive(progress.get("pid")):
                progress["state"] = "interrupted"
            progress["waiting"] = int(folder.name) in self.waiting
            progress["seconds"] = round(
                float(progress.get("updated", 0)) - float(progress.get("started", 0)), 1
            )
            TRAINING_DONE.labels(folder.name).set(float(progress.get("done") or 0.0))
            for model in ("before", "after"):
                if isinstance(progress.get(f"cer_{model}"), int | float):
                    TRAINING_CER.labels(folder.name, model).set(progress[f"cer_{model}"])
            progress["age_seconds"] = round(time.time() - float(progress.get("updated", 0)), 1)
            found.append(progress)
        found += [
            {"project": project, "state": "queued"}
            for project in self.waiting
            if self.registry is not None and not (self.registry.folder(project) / PROGRESS).exists()
        ]
        return found

    async def close(self) -> None:
        """Stop the running training: it starts again when the service does."""
        self.waiting.clear()
        if self.running is not None:
            _, child = self.running
            child.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(child.wait, 10)
            if child.poll() is None:
                child.kill()
            self.running = None
        if self._watch is not None:
            self._watch.cancel()
