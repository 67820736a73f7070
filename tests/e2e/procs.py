"""Child processes for the e2e tests: free ports, process groups, readiness.

Every process is started in its own session (process group) so that stopping
it by its pid also stops what it spawned (Label Studio forks workers, Chromium
forks renderers). Nothing here is killed by name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx

# Any HTTP client in a child process that honours the proxy variables (requests,
# httpx, urllib, sentry) can then reach only this machine: everything else is
# sent to a closed local port and fails at once.
LOOPBACK_ONLY_ENV = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "ALL_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "all_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ChildProcess:
    """A command run in its own process group, its output kept in a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._stopped = False
        self.proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL it if it lingers. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            pgid = os.getpgid(self.proc.pid)
        except ProcessLookupError:
            pgid = None
        if pgid is not None and pgid == self.proc.pid:
            _signal_group(pgid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
            # The leader may be gone while its children are not.
            _signal_group(pgid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=grace_s)
        self._log.close()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_until(
    what: str,
    check: Callable[[], bool],
    timeout_s: float,
    child: ChildProcess | None = None,
    interval_s: float = 0.5,
) -> float:
    """Poll `check` until it holds; return the seconds it took.

    Fails early, with the child's log, when the child exits meanwhile.
    """
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if child is not None and not child.running():
            raise RuntimeError(
                f"{child.name} exited with {child.proc.returncode} while waiting for {what}:\n"
                f"{child.log_tail()}"
            )
        if time.monotonic() - start > timeout_s:
            tail = f":\n{child.log_tail()}" if child is not None else ""
            raise TimeoutError(f"{what} not ready after {timeout_s:.0f} s{tail}")
        time.sleep(interval_s)


def http_ok(
    url: str, predicate: Callable[[httpx.Response], bool] | None = None
) -> Callable[[], bool]:
    """A check for wait_until: GET url answers 200 (and satisfies predicate)."""

    def check() -> bool:
        try:
            response = httpx.get(url, timeout=2.0, trust_env=False)
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            return False
        return predicate is None or predicate(response)

    return check
