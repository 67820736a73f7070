"""The service as a user runs it: `ocr-backend` in its own process, on 127.0.0.1.

One runner for every test and benchmark that needs the real process (signals,
workers, the console script, load): it starts the command on a free port,
waits until /health says UP, and stops it with SIGTERM as `docker stop` does.
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import httpx

from tests.support.environment import REPO_ROOT, with_source_path, without_service_variables
from tests.support.processes import ChildProcess, free_port, wait_until


def console_script() -> list[str]:
    """The `ocr-backend` command installed beside this interpreter, as a user types it."""
    return [str(Path(sys.executable).parent / "ocr-backend")]


class ServiceProcess:
    """`python -m ocr_backend` (or `command`) in its own process group, logging to a file.

    The environment is this process's without any variable the service reads,
    this checkout's src/ on PYTHONPATH, then a test's defaults (English on
    the CPU, offline, an empty MODEL_DIR, 127.0.0.1 and a free port), then
    `settings`. Use it as a context manager: leaving it stops the process.
    """

    def __init__(
        self,
        command: Sequence[str] | None = None,
        *,
        name: str = "ocr-backend",
        log_path: Path | None = None,
        cwd: Path | None = None,
        auth: tuple[str, str] | None = None,
        **settings: str,
    ) -> None:
        self.port = int(settings.get("PORT") or free_port())
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth = auth
        self._home = Path(tempfile.mkdtemp(prefix="ocr-backend-service-"))
        env = with_source_path(without_service_variables())
        env.update(
            LANG_LIST="en",
            HOST="127.0.0.1",
            PORT=str(self.port),
            DEVICE="cpu",
            MODEL_DIR=str(self._home / "models"),
            MODEL_DOWNLOAD="false",
        )
        env.update(settings)
        self.env = env
        self.process = ChildProcess(
            name,
            list(command or [sys.executable, "-m", "ocr_backend"]),
            env,
            log_path or self._home / "service.log",
            cwd=cwd or REPO_ROOT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def name(self) -> str:
        return self.process.name

    def healthy(self) -> bool:
        """/health answers 200 with status UP (the engine is loaded)."""
        try:
            response = httpx.get(self.url + "/health", timeout=2.0, trust_env=False, auth=self.auth)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and response.json().get("status") == "UP"

    def wait_healthy(self, limit: float = 180) -> float:
        """Seconds until /health said UP; fails with the service's output if it exits first."""
        return wait_until(
            f"{self.name} /health UP", self.healthy, limit, child=self.process, interval_s=0.1
        )

    def terminate(self) -> None:
        """SIGTERM to the service alone, as `docker stop` sends it."""
        self.process.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        """The exit code, once the process has exited (within `timeout` seconds)."""
        return self.process.proc.wait(timeout=timeout)

    def output(self) -> str:
        return self.process.output()

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, wait up to `timeout` s for a clean exit, kill what is left; the exit code.

        The output stays readable until the `with` block ends.
        """
        code = self.process.stop(timeout, leader_first=True)
        shutil.rmtree(self._home / "models", ignore_errors=True)
        return code

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self._home, ignore_errors=True)
