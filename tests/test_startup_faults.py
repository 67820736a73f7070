"""Start-up against a broken jobs database, and a Ray address that is not Ray (issue 22).

What an operator sees is the exit status and the lines on stderr, so those
are what is checked: of the real `python -m ocr_backend` for a corrupt file,
and of `serve`, as that command calls it, in this process for the others (a
real process costs 15 to 45 s each on a busy machine).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from ocr_backend.commands.serve import serve
from ocr_backend.errors import ClusterUnreachable
from ocr_backend.jobs import database
from ocr_backend.ocr.cluster_actor import connect
from tests.support.fault_servers import FaultServer, SilentServer
from tests.support.service import ServiceProcess
from tests.support.settings import changed

pytestmark = pytest.mark.slow  # a real service process; Ray probes that wait 10 s

JOBS_FILE = Path("jobs") / "jobs.sqlite3"


def started_and_stopped(model_dir: Path, limit_s: float = 90.0) -> tuple[int, str, float]:
    """Start the service on `model_dir`; its exit status, output and seconds until it exited."""
    started = time.monotonic()
    with ServiceProcess(MODEL_DIR=str(model_dir)) as service:
        code = service.wait(timeout=limit_s)
        return code, service.output(), time.monotonic() - started


def one_clear_line(output: str, path: Path) -> str:
    """The line that names the jobs file; no traceback around it."""
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if str(path) in line]
    assert len(lines) == 1, output
    return lines[0]


# --- 18. a jobs database that cannot be used ---------------------------------------------


def test_a_corrupt_jobs_database_stops_start_up_with_one_line_naming_the_file(tmp_path):
    # Before: a traceback (sqlite3.DatabaseError: file is not a database), exit 3, and
    # the file named nowhere.
    path = tmp_path / JOBS_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not SQLite at all, " * 400)
    code, output, _ = started_and_stopped(tmp_path)
    assert code == 1, output
    line = one_clear_line(output, path)
    assert "not a database" in line or "corrupt" in line
    assert "move it aside" in line


def in_process(settings, model_dir: Path, capsys) -> tuple[int, str, float]:
    """`serve` as `ocr-backend` calls it, in this process: its exit status, what it said
    on stderr, and the seconds it took. The queue is checked first, before the engine
    loads, so a broken one returns at once; the real process is the corrupt file's test."""
    started = time.monotonic()
    code = serve(changed(settings, model_dir=model_dir))
    return code, capsys.readouterr().err, time.monotonic() - started


def test_a_jobs_folder_that_cannot_be_written_stops_start_up_with_one_line(
    settings, tmp_path, capsys
):
    # The folder the queue lives in is a file (as a wrong volume mount leaves it).
    # Before: a traceback (NotADirectoryError / unable to open database file), exit 3.
    (tmp_path / "jobs").write_text("not a folder")
    code, output, _ = in_process(settings, tmp_path, capsys)
    assert code == 1, output
    line = one_clear_line(output, tmp_path / JOBS_FILE)
    assert line.startswith("ocr-backend: ") and "MODEL_DIR" in line


def test_a_locked_jobs_database_stops_start_up_after_a_bounded_wait(
    settings, tmp_path, capsys, monkeypatch
):
    # Another process holds the write lock for good (a stuck sqlite3 shell, a copy tool).
    # Before: a traceback after 37 s and exit 3. The wait is STARTUP_LOCK_WAIT_S (10 s),
    # 1 s here.
    monkeypatch.setattr(database, "STARTUP_LOCK_WAIT_S", 1.0)
    path = tmp_path / JOBS_FILE
    path.parent.mkdir(parents=True)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE held (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code, output, seconds = in_process(settings, tmp_path, capsys)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 1, output
    line = one_clear_line(output, path)
    assert "locked" in line and "held its write lock for 1 s" in line
    assert 1.0 <= seconds < 5.0, f"locked: {seconds:.1f} s"


# --- 20. a RAY_ADDRESS that accepts TCP but is not Ray -----------------------------------


@pytest.mark.parametrize("server", ["silent", "http"])
def test_a_ray_address_that_is_not_ray_stops_start_up_in_seconds(server, settings):
    # Before: `ray.init` neither joined nor failed; no message after 150 s.
    servers = {"silent": SilentServer, "http": FaultServer}
    listening = servers[server]()
    configured = changed(settings, ray_address=f"127.0.0.1:{listening.port}")
    outcome: list[BaseException | None] = []

    def start() -> None:
        try:
            connect(configured)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome.append(exc)

    try:
        thread = threading.Thread(target=start, daemon=True)
        started = time.monotonic()
        thread.start()
        thread.join(60)
        took = time.monotonic() - started
    finally:
        listening.close()
    assert outcome, f"start-up neither joined nor failed in {took:.0f} s"
    (error,) = outcome
    assert isinstance(error, ClusterUnreachable), error
    assert "not Ray" in str(error) and f"RAY_ADDRESS=127.0.0.1:{listening.port}" in str(error)
    assert took < 15
