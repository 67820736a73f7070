"""What /setup said about each Label Studio project, kept where every worker process sees it.

With WORKERS > 1, Label Studio's /setup and the /predict after it may reach
different processes, so nothing of it can live only in one process's memory:
each project is one small JSON file under MODEL_DIR, replaced atomically and
readable only by the service's user (it holds Label Studio's token).

Anyone who can reach /setup can add projects, so the store is bounded: at
most MAX_PROJECTS files, the least recently set up forgotten first (150
anonymous calls once wrote 300 MB and kept all of it in memory too). A
forgotten project's next /predict asks for its config, and Label Studio
sends /setup again when its project settings are opened.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

STORE_DIR = "label-studio-projects"
SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class ProjectSetup:
    """One project's /setup: its label config, and where its Label Studio is, with which token."""

    label_config: str
    hostname: str | None = None
    access_token: str | None = None

    def __repr__(self) -> str:  # the token stays out of logs and tracebacks
        token = "(hidden)" if self.access_token else None
        return f"ProjectSetup(hostname={self.hostname!r}, access_token={token})"


class ProjectStore:
    """One file per project under `directory`, at most `max_projects`.

    Only a process that cannot write keeps projects in memory, as many and no more.
    """

    def __init__(self, directory: Path, *, max_projects: int = 200) -> None:
        self.directory = Path(directory)
        self.max_projects = max_projects
        self._memory: OrderedDict[str | None, ProjectSetup] = OrderedDict()

    def path(self, project: str | None) -> Path:
        if project is None:
            name = "no-project"
        elif SAFE_KEY.match(project):
            name = f"project-{project}"
        else:  # whatever a client sends must not become a path of its choosing
            # surrogatepass: JSON may carry lone surrogates, which UTF-8 alone refuses.
            digest = hashlib.sha256(project.encode("utf-8", "surrogatepass")).hexdigest()
            name = "project-sha256-" + digest
        return self.directory / f"{name}.json"

    def save(self, project: str | None, setup: ProjectSetup) -> None:
        try:
            self._write(self.path(project), json.dumps({"project": project, **asdict(setup)}))
            self._memory.pop(project, None)
            self._forget_oldest()
        except OSError as exc:
            self._memory[project] = setup
            self._memory.move_to_end(project)
            while len(self._memory) > self.max_projects:
                self._memory.popitem(last=False)
            log.warning(
                "cannot keep /setup of project %s in %s (%s): other worker processes will not "
                "see it; make MODEL_DIR writable",
                project,
                self.directory,
                exc.strerror or exc,
            )

    def load(self, project: str | None) -> ProjectSetup | None:
        """The latest /setup of `project` that any worker stored, else what this one kept."""
        try:
            stored = json.loads(self.path(project).read_text(encoding="utf-8"))
            return ProjectSetup(
                label_config=stored["label_config"],
                hostname=stored.get("hostname"),
                access_token=stored.get("access_token"),
            )
        except FileNotFoundError:
            return self._memory.get(project)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning(
                "cannot read /setup of project %s from %s: %s", project, self.directory, exc
            )
            return self._memory.get(project)

    def known(self, project: str | None) -> bool:
        """Whether /setup was called for `project` (and is still kept); a stat, no read."""
        return project in self._memory or self.path(project).exists()

    def _forget_oldest(self) -> None:
        """Remove the files of the projects set up longest ago, beyond `max_projects`."""
        stored = []
        for path in self.directory.glob("*.json"):
            if path.name.startswith(".tmp-"):
                continue  # a file another worker is writing
            try:
                stored.append((path.stat().st_mtime_ns, path.name, path))
            except FileNotFoundError:
                continue  # another worker removed it meanwhile
        stored.sort()
        for _, _, path in stored[: max(0, len(stored) - self.max_projects)]:
            path.unlink(missing_ok=True)

    def _write(self, path: Path, text: str) -> None:
        # mkstemp creates the file 0600; os.replace makes readers see the old or the new file
        # whole, never a half-written one, whichever worker writes at the same time.
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
            os.chmod(temporary, 0o600)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
