"""A throwaway Label Studio for the e2e tests, and a small client of its API.

Label Studio lives in its own virtual environment (scripts/install-label-studio.sh)
and is driven only over HTTP on 127.0.0.1, as a user would.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import (
    LOOPBACK_ONLY_ENV,
    ChildProcess,
    free_port,
    http_ok,
    wait_until,
)

LS_VERSION = "1.23.2"
REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-label-studio.sh"

# Switched off so that Label Studio talks to nobody but us: error reports,
# usage analytics and the "newer version" check all go to public hosts.
QUIET_ENV = {
    "SENTRY_DSN": "",
    "FRONTEND_SENTRY_DSN": "",
    "COLLECT_ANALYTICS": "false",
    "LATEST_VERSION_CHECK": "false",
}


def cache_dir() -> Path:
    return Path(os.environ.get("OCR_BACKEND_CACHE") or Path.home() / ".cache" / "ocr-backend")


def venv_dir() -> Path:
    return cache_dir() / f"label-studio-{LS_VERSION}"


def ensure_installed() -> Path:
    """The venv's label-studio command, installing it first if needed.

    Raises LabelStudioUnavailable with the installer's reason when it cannot be
    installed, for the tests to skip with.
    """
    venv = venv_dir()
    command = venv / "bin" / "label-studio"
    failed = Path(f"{venv}.failed")
    if not command.exists():
        subprocess.run(["bash", str(INSTALL_SCRIPT)], check=False, timeout=900)
    if not command.exists():
        reason = failed.read_text().strip() if failed.exists() else "no reason recorded"
        raise LabelStudioUnavailable(
            f"Label Studio {LS_VERSION} could not be installed into {venv}: {reason}"
        )
    return command


class LabelStudioUnavailable(Exception):
    """Label Studio cannot be installed on this machine; the reason is the message."""


def package_file(*parts: str) -> Path:
    """A file of the installed label_studio package."""
    pattern = str(venv_dir().joinpath("lib", "python*", "site-packages", "label_studio", *parts))
    found = glob.glob(pattern)
    if not found:
        raise FileNotFoundError(f"{parts[-1]} not found at {pattern}")
    return Path(found[0])


def stock_ocr_config() -> str:
    """The label config of the stock OCR template, as the installed package ships it."""
    config = package_file(
        "annotation_templates", "computer-vision", "optical-character-recognition", "config.yml"
    )
    return _yaml_block_scalar(config.read_text(), "config")


def _yaml_block_scalar(text: str, key: str) -> str:
    """The value of a top-level `key: |` block (no PyYAML in the service's venv)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.rstrip() == f"{key}: |")
    block: list[str] = []
    indent: int | None = None
    for line in lines[start + 1 :]:
        if line.strip() and not line.startswith(" "):
            break
        if indent is None and line.strip():
            indent = len(line) - len(line.lstrip())
        block.append(line[indent or 0 :])
    return "\n".join(block).strip() + "\n"


@dataclass
class LabelStudioServer:
    url: str
    port: int
    email: str
    password: str
    data_dir: Path
    process: ChildProcess
    startup_s: float
    # LOCAL_FILES_DOCUMENT_ROOT: local storages (and the files they serve) live under it.
    local_files_root: Path | None = None


def label_studio_environment(data_dir: Path) -> dict[str, str]:
    """This process's environment for Label Studio on `data_dir`, kept off the network."""
    env = {
        key: value
        for key, value in os.environ.items()
        # Label Studio reads HOST, PORT and any LABEL_STUDIO_* / HEARTEX_* as its own
        # settings; the service's variables must not leak into it.
        if not key.startswith(("LABEL_STUDIO_", "HEARTEX_")) and key not in ("HOST", "PORT")
    }
    env.update(QUIET_ENV)
    env.update(LOOPBACK_ONLY_ENV)
    env["LABEL_STUDIO_BASE_DATA_DIR"] = str(data_dir)
    return env


# Beside the venv, so that reinstalling Label Studio (which removes the venv) removes it too.
MIGRATED_DATABASE = "ocr-backend-e2e-migrated.sqlite3"


def migrated_database() -> Path | None:
    """An empty database with all of this Label Studio's migrations applied; None if that fails.

    `label-studio start` on a new data dir first applies its several hundred
    migrations: a minute or two of CPU, most of its cold start. The install
    script applies them once, with Label Studio's own `manage.py migrate`,
    into a database kept in the venv (`make test` does it while the service's
    own venv installs); each session starts on a copy, and Label Studio finds
    nothing left to migrate. Users, projects and the secret key are made by
    each start, as before.
    """
    template = venv_dir() / MIGRATED_DATABASE
    if not template.exists():  # run outside `make test`: the script makes it (idempotent)
        subprocess.run(["bash", str(INSTALL_SCRIPT)], check=False, timeout=900)
    return template if template.exists() else None


def start_label_studio(work_dir: Path, log_path: Path, timeout_s: float = 240) -> LabelStudioServer:
    command = ensure_installed()
    port = free_port()
    email, password = "e2e@example.com", "e2e-Passw0rd!"
    data_dir = work_dir / "label-studio-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    local_files_root = work_dir / "local-files"
    local_files_root.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()  # the first session's migrations count as start-up too
    database = data_dir / "label_studio.sqlite3"
    template = None if database.exists() else migrated_database()
    if template is not None:
        shutil.copyfile(template, database)
    env = label_studio_environment(data_dir)
    env.update(
        LABEL_STUDIO_USERNAME=email,
        LABEL_STUDIO_PASSWORD=password,
        USE_DEFAULT_BANNED_SUBNETS="false",
        # Local storage (documents' page images): off by default in Label Studio.
        LOCAL_FILES_SERVING_ENABLED="true",
        LOCAL_FILES_DOCUMENT_ROOT=str(local_files_root),
    )
    argv = [
        str(command),
        "start",
        "--no-browser",
        "--port",
        str(port),
        "--internal-host",
        "127.0.0.1",
    ]
    process = ChildProcess("label-studio", argv, env, log_path, cwd=work_dir)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until("Label Studio /health", http_ok(f"{url}/health"), timeout_s, child=process)
    except BaseException:
        process.stop()
        raise
    return LabelStudioServer(
        url=url,
        port=port,
        email=email,
        password=password,
        data_dir=data_dir,
        process=process,
        startup_s=time.monotonic() - start,
        local_files_root=local_files_root,
    )


def login_session(base_url: str, email: str, password: str) -> httpx.Client:
    """A cookie session logged in through the login form, as a browser does."""
    session = httpx.Client(base_url=base_url, trust_env=False, timeout=30.0)
    session.get("/user/login/").raise_for_status()
    csrf = session.cookies["csrftoken"]
    response = session.post(
        "/user/login/",
        data={"email": email, "password": password, "csrfmiddlewaretoken": csrf},
        headers={"Referer": f"{base_url}/user/login/"},
    )
    if response.status_code != 302 or "sessionid" not in session.cookies:
        raise RuntimeError(f"login failed: {response.status_code} {response.text[:300]}")
    return session


def create_personal_access_token(session: httpx.Client) -> str:
    """POST /api/token/ in a logged-in session: a personal access token (JWT refresh token)."""
    response = session.post(
        "/api/token/",
        headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": f"{session.base_url}/"},
    )
    response.raise_for_status()
    return response.json()["token"]


class LabelStudioApi:
    """Label Studio's REST API with a personal access token, as a script uses it."""

    def __init__(self, base_url: str, personal_access_token: str) -> None:
        self.base_url = base_url
        self.pat = personal_access_token
        self.http = httpx.Client(base_url=base_url, trust_env=False, timeout=120.0)
        self._access: str | None = None

    def close(self) -> None:
        self.http.close()

    def _refresh(self) -> None:
        response = self.http.post("/api/token/refresh/", json={"refresh": self.pat})
        response.raise_for_status()
        self._access = response.json()["access"]

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self._access is None:
            self._refresh()
        response = self.http.request(method, path, headers=self._auth(), **kwargs)
        if response.status_code == 401:  # the short-lived access token expired
            self._refresh()
            response = self.http.request(method, path, headers=self._auth(), **kwargs)
        return response

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._access}"}

    def call(
        self, method: str, path: str, expect: int | tuple[int, ...] = (200, 201), **kwargs: Any
    ) -> Any:
        response = self.request(method, path, **kwargs)
        expected = (expect,) if isinstance(expect, int) else expect
        if response.status_code not in expected:
            raise AssertionError(
                f"{method} {path} answered {response.status_code}, expected {expected}: {response.text[:2000]}"
            )
        return response.json() if response.content else None

    # -- the calls the tests make -------------------------------------------------

    def create_project(self, title: str, label_config: str) -> dict[str, Any]:
        return self.call(
            "POST", "/api/projects/", json={"title": title, "label_config": label_config}
        )

    def import_files(self, project_id: int, files: dict[str, bytes]) -> dict[str, Any]:
        # One form field per file: Label Studio reads request.FILES.items(),
        # which keeps only the last file of a repeated field name.
        multipart = [(name, (name, data, "image/png")) for name, data in files.items()]
        return self.call(
            "POST",
            f"/api/projects/{project_id}/import",
            params={"return_task_ids": "true"},
            files=multipart,
        )

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> dict[str, Any]:
        return self.call(
            "POST",
            f"/api/projects/{project_id}/import",
            params={"return_task_ids": "true"},
            json=tasks,
        )

    def add_local_storage(self, project_id: int, path: Path) -> dict[str, Any]:
        """A local-files import storage on `path` (under LOCAL_FILES_DOCUMENT_ROOT), no sync."""
        return self.call(
            "POST",
            "/api/storages/localfiles",
            json={"project": project_id, "path": str(path), "title": "documents",
                  "use_blob_urls": True, "regex_filter": ".*png"},
        )  # fmt: skip

    def tasks(self, project_id: int) -> list[dict[str, Any]]:
        body = self.call(
            "GET", "/api/tasks", params={"project": project_id, "page_size": 1000, "fields": "all"}
        )
        return body["tasks"] if isinstance(body, dict) else body

    def task(self, task_id: int) -> dict[str, Any]:
        return self.call("GET", f"/api/tasks/{task_id}")

    def predictions(self, task_id: int) -> list[dict[str, Any]]:
        return self.call("GET", "/api/predictions/", params={"task": task_id})

    def tasks_with_predictions(self, task_ids: Iterable[int]) -> int:
        """How many of the tasks have at least one prediction stored."""
        return sum(1 for task_id in task_ids if self.predictions(task_id))

    def connect_backend(self, project_id: int, url: str, **fields: Any) -> httpx.Response:
        body = {"project": project_id, "url": url, "title": "ocr-backend", **fields}
        return self.request("POST", "/api/ml", json=body)

    def backend(self, backend_id: int) -> dict[str, Any]:
        return self.call("GET", f"/api/ml/{backend_id}")

    def retrieve_predictions(self, project_id: int, task_ids: list[int]) -> dict[str, Any]:
        """The Data Manager action "Retrieve predictions" on the given tasks."""
        return self.call(
            "POST",
            "/api/dm/actions",
            params={"id": "retrieve_tasks_predictions", "project": project_id},
            json={"selectedItems": {"all": False, "included": task_ids}},
        )

    def set_legacy_tokens(self, enabled: bool) -> dict[str, Any]:
        return self.call(
            "POST",
            "/api/jwt/settings",
            json={"api_tokens_enabled": True, "legacy_api_tokens_enabled": enabled},
        )
