"""The fine-tuned recognisers, per Label Studio host and project, under MODEL_DIR.

    MODEL_DIR/trained/<host>/<project>/
        current.json         which training serves the project now, and the ones before it
        training-<N>.pth     the weights of training N (kept, served or not)
        training-<N>.json    its figures: CER before and after, lines, time, verdict

`<host>` is Label Studio's origin, readable and with a digest (two hosts
never share a folder): the weights learnt from one Label Studio's project 7
are never served to another's project 7, even when two services share
MODEL_DIR. Every file is written whole, beside its name, and renamed onto it:
a service that reads while a training writes sees the old file or the new
one, never half of one. A training that is not better than what serves is
kept with its figures and reason, and never served. Rolling back serves the
training promoted before the current one (or the stock model).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class ProjectModel:
    """A promoted recogniser: what a project's predictions are read with."""

    project: int
    number: int
    version: str  # model_version: the stock version + project + training number
    weights: Path


def host_folder(host: str) -> str:
    """A folder name for Label Studio's origin: readable, and unique by its digest."""
    parts = urlsplit(host.strip().rstrip("/").lower())
    origin = f"{parts.scheme}://{parts.netloc}"
    readable = re.sub(r"[^a-z0-9.-]+", "_", parts.netloc)[:60] or "host"
    return f"{readable}-{hashlib.sha256(origin.encode()).hexdigest()[:12]}"


def project_version(stock_version: str, project: int, number: int) -> str:
    return f"{stock_version}-project{project}-training{number}"


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class ModelRegistry:
    """The trained recognisers of one Label Studio's projects."""

    def __init__(self, model_dir: Path, host: str) -> None:
        self.root = model_dir / "trained" / host_folder(host)
        self.host = host

    def folder(self, project: int) -> Path:
        return self.root / str(int(project))

    def weights_path(self, project: int, number: int) -> Path:
        return self.folder(project) / f"training-{number}.pth"

    def _state(self, project: int) -> dict[str, Any]:
        try:
            state = json.loads((self.folder(project) / "current.json").read_text())
        except (FileNotFoundError, ValueError):
            return {"promoted": [], "trainings": 0}
        return state if isinstance(state, dict) else {"promoted": [], "trainings": 0}

    def _save_state(self, project: int, state: dict[str, Any]) -> None:
        write_atomically(
            self.folder(project) / "current.json", json.dumps(state, indent=2).encode() + b"\n"
        )

    def next_number(self, project: int) -> int:
        """The number the next training of the project gets (1, 2, ...); reserved at once."""
        state = self._state(project)
        state["trainings"] = int(state.get("trainings", 0)) + 1
        self._save_state(project, state)
        return int(state["trainings"])

    def current(self, project: int) -> ProjectModel | None:
        """What serves the project now; None: the stock model."""
        state = self._state(project)
        promoted = state.get("promoted") or []
        if not promoted:
            return None
        number = int(promoted[-1]["number"])
        weights = self.weights_path(project, number)
        if not weights.is_file():
            return None
        return ProjectModel(project, number, str(promoted[-1]["version"]), weights)

    def record(
        self, project: int, number: int, figures: dict[str, Any], promote: bool, stock_version: str
    ) -> ProjectModel | None:
        """Keep training `number`'s figures; serve its weights when `promote`."""
        version = project_version(stock_version, project, number)
        figures = {**figures, "number": number, "version": version, "promoted": promote}
        write_atomically(
            self.folder(project) / f"training-{number}.json",
            json.dumps(figures, indent=2, ensure_ascii=False).encode() + b"\n",
        )
        if not promote:
            return None
        state = self._state(project)
        state.setdefault("promoted", []).append({"number": number, "version": version})
        self._save_state(project, state)
        return self.current(project)

    def rollback(self, project: int) -> tuple[ProjectModel | None, ProjectModel | None]:
        """Serve the model promoted before the current one; (what served, what serves now).
        The rolled-back training's files stay, with its figures."""
        before = self.current(project)
        state = self._state(project)
        promoted = state.get("promoted") or []
        if promoted:
            state.setdefault("rolled_back", []).append(promoted.pop())
            state["promoted"] = promoted
            self._save_state(project, state)
        return before, self.current(project)

    def trainings(self, project: int) -> list[dict[str, Any]]:
        """The figures of every training of the project, oldest first."""
        found = []
        for path in sorted(self.folder(project).glob("training-*.json")):
            try:
                found.append(json.loads(path.read_text()))
            except ValueError:
                continue
        return sorted(found, key=lambda figures: int(figures.get("number", 0)))


def project_id(value: Any) -> int | None:
    """A project id from what Label Studio sends: an id, `"7.1763892800"`, `{"id": 7, ...}`."""
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value < 2**63 else None
    if isinstance(value, str):
        head = value.strip().partition(".")[0]
        if head.isdigit() and 0 < int(head) < 2**63:
            return int(head)
    return None
