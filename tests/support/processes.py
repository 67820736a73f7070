"""Child processes of the tests and benchmarks: free ports, process groups, readiness.

Every process is started in its own session (process group) so that stopping
it by its pid also stops what it spawned (Label Studio forks workers, Chromium
forks renderers, uvicorn forks its workers). Nothing here is killed by name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx

from tests.support.environment import with_source_path, without_service_variables

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
    """A TCP port on 127.0.0.1 that nothing listens on right now (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def closed_port() -> int:
    """A port on 127.0.0.1 to connect to and be refused: a server that is down."""
    return free_port()


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

    def output(self) -> str:
        """Everything the process wrote so far (stdout and stderr)."""
        if not self._log.closed:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def stop(self, grace_s: float = 10.0, *, leader_first: bool = False) -> int:
        """SIGTERM the process group, then SIGKILL it if it lingers; return the exit code.

        With `leader_first`, only the leader gets SIGTERM (as `docker stop` or a
        supervisor sends it), and the group is killed only if something is left
        after the leader exits. Idempotent.
        """
        if not self._stopped:
            self._stopped = True
            # start_new_session made the leader's pid the group's id: the group
            # can be signalled even when the leader is already gone.
            if leader_first:
                if self.proc.poll() is None:
                    self.proc.send_signal(signal.SIGTERM)
            else:
                _signal_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
            # The leader may be gone while its children are not.
            _signal_group(self.proc.pid, signal.SIGKILL)
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=grace_s)
            self._log.close()
        return self.proc.returncode


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


def run_train(
    project: int, settings: Mapping[str, str], timeout_s: float
) -> subprocess.CompletedProcess[str]:
    """`ocr-backend train --project N` run as a user runs it, this checkout's code, with
    `settings` and none of the service's variables from the shell; output captured."""
    return subprocess.run(
        [sys.executable, "-m", "ocr_backend", "train", "--project", str(project)],
        env=with_source_path(without_service_variables() | dict(settings)),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
