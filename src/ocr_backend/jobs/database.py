"""Opening the queue's SQLite file, and checking at start-up that it can be used.

A corrupt file, a folder that cannot be written or a lock another process
holds for good used to stop the service inside uvicorn's lifespan: a raw
traceback, exit status 3, the file named nowhere, and for a lock only after
SQLite's 30 s busy timeout (37 s measured). `check_job_store` runs before
the engine loads, so the operator gets one line that names the file and
says what to do, and `ocr-backend` exits 1 as for any other start-up error.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ..errors import JobStoreUnusable

JOBS_DIR = "jobs"  # under MODEL_DIR
FILE_NAME = "jobs.sqlite3"
# While serving, a write waits this long for another process's lock (a lock held 75 s
# by another worker was survived: the write is retried by the caller's next step).
BUSY_TIMEOUT_S = 30.0
# At start-up, a lock still held after this long is reported, not waited out.
STARTUP_LOCK_WAIT_S = 10.0


def open_database(
    path: Path, schema: str, *, timeout: float = BUSY_TIMEOUT_S
) -> sqlite3.Connection:
    """The queue file in WAL mode with `schema` applied; private to this user."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(schema)
        os.chmod(path, 0o600)  # it holds the tasks' data
    except BaseException:
        db.close()
        raise
    return db


def check_job_store(directory: Path, schema: str, *, lock_wait_s: float | None = None) -> None:
    """Open the queue and take its write lock once, or raise JobStoreUnusable saying why.

    `lock_wait_s`: STARTUP_LOCK_WAIT_S unless given (read at the call, so a test may
    shorten it)."""
    if lock_wait_s is None:
        lock_wait_s = STARTUP_LOCK_WAIT_S
    path = Path(directory) / FILE_NAME
    try:
        db = open_database(path, schema, timeout=lock_wait_s)
        try:
            db.execute("BEGIN IMMEDIATE")  # the write lock every claim takes
            db.execute("ROLLBACK")
        finally:
            db.close()
    except (sqlite3.Error, OSError) as exc:
        raise JobStoreUnusable(_explain(path, exc, lock_wait_s)) from None


def _explain(path: Path, exc: BaseException, lock_wait_s: float) -> str:
    message = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and "locked" in message:
        return (
            f"the jobs database {path} is locked: another process held its write lock for "
            f"{lock_wait_s:.0f} s. Stop whatever holds it (another ocr-backend with this "
            "MODEL_DIR on another machine, a sqlite3 shell, a backup tool), then start again."
        )
    if isinstance(exc, sqlite3.DatabaseError) and (
        "not a database" in message or "malformed" in message or "corrupt" in message
    ):
        return (
            f"the jobs database {path} is corrupt ({message}). Stop the service, move it "
            "aside (e.g. mv jobs.sqlite3 jobs.sqlite3.broken, with its -wal and -shm files) "
            "and start again: the queue starts empty, and Label Studio asks again for the "
            "tasks that still lack predictions."
        )
    return (
        f"the jobs database {path} cannot be opened and written ({message}). MODEL_DIR "
        f"must be a folder this user can write, with {path.parent} a folder in it; fix its "
        "permissions or mount, or set MODEL_DIR to one that is writable."
    )
