"""The queue on disk: one SQLite row per task to read, shared by every worker process.

SQLite from the standard library, in WAL mode, under MODEL_DIR: several
WORKERS processes (and `ocr-backend annotate`) open the same file. Every
change of a row's state is one statement or one `BEGIN IMMEDIATE`
transaction, so two processes never claim the same task, and a task is
delivered (in an answer or through Label Studio's API) by whoever wins one
atomic update, never by both. The rows outlive the process: work left queued
by a stop resumes at the next start.

A row's life:

    queued ──claim──▶ reading ──▶ done ──┬─ answering ──▶ answered  (a /predict answer, sent)
       ▲                  │              └─ writing ──▶ written  (through the API)
       └──── retry ◀── failed                  └──▶ unsure (cut short: check first)

Every row is for one Label Studio: `scope` is the LABEL_STUDIO_HOST of the
service that queued it ('' without one), and a service claims only rows of
its own scope, so two services that share a MODEL_DIR never read or write
each other's tasks. `ls_host` is the host the row is written to, fixed when
it is queued: a later /setup does not move it.

Calls block for a millisecond or so; `JobStore` runs them on one thread of
its own so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from ..priority import Priority
from ..processes import pid_alive
from ..settings import Settings
from .database import FILE_NAME, JOBS_DIR, open_database

T = TypeVar("T")


class State(StrEnum):
    """Where a task is in its reading (the `state` column; the SQL below spells the values)."""

    QUEUED = "queued"
    READING = "reading"
    DONE = "done"
    FAILED = "failed"


class Delivery(StrEnum):
    """Where a read task's result went (the `delivery` column; NULL: nowhere yet)."""

    ANSWERED = "answered"  # given in a /predict answer
    WRITING = "writing"  # being written to Label Studio through its API
    WRITTEN = "written"  # written through the API
    UNSURE = "unsure"  # a write cut short, or answered late: Label Studio may hold it
    ANSWERING = "answering"  # in a /predict answer not yet sent whole


# The project of a request that names none (a client other than Label Studio): its tasks
# are queued apart, and written with the settings' Label Studio only.
NO_PROJECT = "-"


def stored_project(project: str) -> str:
    """A project id as the queue keeps it: SQLite holds UTF-8, so a lone surrogate a
    client sent is kept escaped, as text."""
    return project.encode("utf-8", "backslashreplace").decode("utf-8")


__all__ = ["FILE_NAME", "JOBS_DIR"]  # where the queue lives (jobs/database.py)

# A result written through the API this recently is not answered again: the request
# asking for it was most likely sent before Label Studio stored the written one.
RECENTLY_WRITTEN_S = 120.0
# An owner that has not said it is alive for this long is gone (another machine, or hung).
OWNER_TIMEOUT_S = 60.0
# An answer claimed this long ago and not confirmed sent never reached Label Studio whole
# (the process died while sending it): Label Studio may or may not hold it, so it is
# checked, then written. Sending an answer takes milliseconds; a minute is generous.
ANSWERING_STALE_S = 60.0
# write_after of results whose writing stopped (refused too often): until /setup or a start.
WRITES_STOPPED = 1e18

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    key TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    project TEXT NOT NULL,
    ls_project INTEGER,
    task_id INTEGER,
    model_version TEXT NOT NULL,
    config TEXT NOT NULL,
    task TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL,
    owner TEXT,
    result TEXT,
    score REAL,
    reason TEXT,
    error TEXT,
    delivery TEXT,
    delivered_at REAL,
    delivered_to TEXT,
    write_error TEXT,
    write_after REAL NOT NULL DEFAULT 0,
    write_attempts INTEGER NOT NULL DEFAULT 0,
    scope TEXT NOT NULL DEFAULT '',
    ls_host TEXT,
    wanted_until REAL NOT NULL DEFAULT 0,
    asked_by TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS tasks_queue ON tasks (state, priority, seq);
CREATE INDEX IF NOT EXISTS tasks_project ON tasks (project, state);
CREATE TABLE IF NOT EXISTS configs (digest TEXT PRIMARY KEY, label_config TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tasks_scope ON tasks (scope, state, delivery);
CREATE TABLE IF NOT EXISTS owners (
    owner TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, seen_at REAL NOT NULL
);
"""

# Columns added since the first release: a file made then gets them at the next start.
ADDED_COLUMNS = {
    "write_attempts": "INTEGER NOT NULL DEFAULT 0",
    "scope": "TEXT NOT NULL DEFAULT ''",
    "ls_host": "TEXT",
}


@dataclass(frozen=True)
class Entry:
    """One task a request (or `annotate`) wants read."""

    key: str
    project: str
    ls_project: int | None
    task_id: int | None
    model_version: str
    config_digest: str
    task: dict[str, Any]
    asked_by: str = "-"  # the request id, for the log lines about this task
    ls_host: str | None = None  # the Label Studio it is written to, as resolved now


@dataclass(frozen=True)
class Claimed:
    """A task this process now reads (or writes): everything needed, from the row."""

    key: str
    project: str
    ls_project: int | None
    task_id: int | None
    model_version: str
    label_config: str
    task: dict[str, Any]
    priority: Priority
    asked_by: str = "-"
    result: list[dict[str, Any]] | None = None
    score: float | None = None
    unsure: bool = False  # a write cut short: Label Studio may hold it already
    ls_host: str | None = None
    write_attempts: int = 0


@dataclass(frozen=True)
class Outcome:
    """What an answer says about one task, as the row stood when the answer claimed it."""

    state: State
    delivery: Delivery | None
    result: list[dict[str, Any]] | None = None
    score: float | None = None
    reason: str | None = None
    error: str | None = None
    delivered_to: str | None = None
    delivered_at: float | None = None
    answered_here: bool = False


def new_owner() -> str:
    """Who claims: host, process and a start-up nonce (a pid is reused after a restart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


class JobStore:
    """The queue file, and the atomic steps every process takes on it."""

    def __init__(self, directory: Path, *, owner: str | None = None, scope: str = "") -> None:
        self.path = Path(directory) / FILE_NAME
        self.owner = owner or new_owner()
        self.scope = scope  # the only rows this process queues, claims and writes
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jobs-db")
        self._db: sqlite3.Connection | None = None

    # -- plumbing ---------------------------------------------------------------------

    async def run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(call, *args, **kwargs))

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            db = open_database(self.path, SCHEMA)
            have = {row["name"] for row in db.execute("PRAGMA table_info(tasks)")}
            for column, kind in ADDED_COLUMNS.items():
                if column not in have:
                    db.execute(f"ALTER TABLE tasks ADD COLUMN {column} {kind}")
            self._db = db
        return self._db

    def _transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            value = body(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return value

    def close(self) -> None:
        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        self._thread.submit(shut).result()
        self._thread.shutdown(wait=True)

    # -- requests ---------------------------------------------------------------------

    def submit(
        self,
        entries: Sequence[Entry],
        label_configs: dict[str, str],
        priority: Priority,
        wanted_until: float,
    ) -> int:
        """Queue what is new, join what is under way, retry what failed; how many are queued.

        A task done and not yet delivered is kept for this request's answer
        (`wanted_until` holds the background writer back until then).
        """
        now = time.time()

        def body(db: sqlite3.Connection) -> int:
            for digest, config in label_configs.items():
                db.execute(
                    "INSERT OR IGNORE INTO configs (digest, label_config) VALUES (?, ?)",
                    (digest, config),
                )
            queued = 0
            base = time.time_ns() // 1000 * 1000
            for index, entry in enumerate(entries):
                row = db.execute(
                    "SELECT state, delivery, delivered_at FROM tasks WHERE key = ?", (entry.key,)
                ).fetchone()
                if row is None:
                    db.execute(
                        "INSERT INTO tasks (key, seq, project, ls_project, task_id, "
                        "model_version, config, task, priority, state, wanted_until, asked_by, "
                        "created_at, scope, ls_host) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
                        (
                            entry.key,
                            base + index,
                            entry.project,
                            entry.ls_project,
                            entry.task_id,
                            entry.model_version,
                            entry.config_digest,
                            json.dumps(entry.task),
                            int(priority),
                            wanted_until,
                            entry.asked_by,
                            now,
                            self.scope,
                            entry.ls_host,
                        ),
                    )
                    queued += 1
                elif row["state"] in ("queued", "reading"):
                    db.execute(
                        "UPDATE tasks SET priority = MIN(priority, ?), "
                        "wanted_until = MAX(wanted_until, ?) WHERE key = ?",
                        (int(priority), wanted_until, entry.key),
                    )
                elif row["state"] == "failed":  # asked again: try again
                    db.execute(
                        "UPDATE tasks SET state = 'queued', owner = NULL, reason = NULL, "
                        "error = NULL, priority = ?, wanted_until = ?, seq = ?, config = ?, "
                        "task = ?, asked_by = ? WHERE key = ?",
                        (
                            int(priority),
                            wanted_until,
                            base + index,
                            entry.config_digest,
                            json.dumps(entry.task),
                            entry.asked_by,
                            entry.key,
                        ),
                    )
                    queued += 1
                elif row["delivery"] is None:
                    db.execute(
                        "UPDATE tasks SET wanted_until = MAX(wanted_until, ?) WHERE key = ?",
                        (wanted_until, entry.key),
                    )
                elif row["delivery"] == "answered" or (
                    row["delivery"] == "written"
                    and (row["delivered_at"] or 0) < now - RECENTLY_WRITTEN_S
                ):
                    # Label Studio asks only for tasks that lack this model version: the one
                    # delivered before is gone (deleted, or an answer it dropped). Give the
                    # stored result again rather than read the image again. Its data and
                    # config come back with it (the key names that data): the write-back
                    # needs them if no answer takes it.
                    db.execute(
                        "UPDATE tasks SET delivery = NULL, delivered_at = NULL, "
                        "delivered_to = NULL, wanted_until = ?, config = ?, task = ? "
                        "WHERE key = ?",
                        (wanted_until, entry.config_digest, json.dumps(entry.task), entry.key),
                    )
            return queued

        return self._transaction(body)

    def first_unsettled(self, keys: Sequence[str], start: int = 0) -> int | None:
        """Where, from `start`, the first chunk of keys with a task still queued or being
        read begins; None when all are settled.

        A waiting request asks this every POLL_S on the store's only thread. Counting
        all its keys each time, 3 requests of 100,000 tasks held that thread so long that
        a one-task request's median wait went from 0.33 s to 4.5 s (the worst 123 s).
        It stops at the first unsettled chunk instead, and the caller starts there next
        time (the chunks before it are settled): usually one query of 500 keys.
        """
        for offset in range(start, len(keys), CHUNK):
            chunk = keys[offset : offset + CHUNK]
            marks = ",".join("?" * len(chunk))
            if self.db.execute(
                f"SELECT 1 FROM tasks WHERE key IN ({marks}) "  # noqa: S608 - marks only
                "AND state IN ('queued', 'reading') LIMIT 1",
                chunk,
            ).fetchone():
                return offset
        return None

    def claim_answers(
        self, keys: Sequence[str], answer: str, *, settled_only: bool = False
    ) -> dict[str, Outcome]:
        """Each task's outcome; the results done and undelivered are now this answer's.

        They are `answering` until the answer is sent (`answers_sent`), or given back
        to the writer when the client is gone (`answers_not_sent`). With `settled_only`,
        tasks still queued or being read are left out: an answer of 200,000 tasks, most
        of them queued, took 1.5 s more to make outcomes that all said "pending".
        """
        now = time.time()

        def body(db: sqlite3.Connection) -> dict[str, Outcome]:
            outcomes: dict[str, Outcome] = {}
            for chunk in _chunks(list(dict.fromkeys(keys))):
                marks = ",".join("?" * len(chunk))
                columns = ANSWER_COLUMNS
                query = f"SELECT {columns} FROM tasks WHERE key IN ({marks})"  # noqa: S608
                if settled_only:
                    query += " AND state NOT IN ('queued', 'reading')"
                rows = db.execute(query, chunk).fetchall()
                for row in rows:
                    mine = row["state"] == "done" and row["delivery"] is None
                    if mine:
                        db.execute(
                            "UPDATE tasks SET delivery = 'answering', delivered_at = ?, "
                            "delivered_to = ? WHERE key = ?",
                            (now, answer, row["key"]),
                        )
                    delivered = Delivery(row["delivery"]) if row["delivery"] else None
                    outcomes[row["key"]] = Outcome(
                        state=State(row["state"]),
                        delivery=Delivery.ANSWERED if mine else delivered,
                        result=json.loads(row["result"]) if row["result"] else None,
                        score=row["score"],
                        reason=row["reason"],
                        error=row["error"],
                        delivered_to=answer if mine else row["delivered_to"],
                        delivered_at=now if mine else row["delivered_at"],
                        answered_here=mine,
                    )
            return outcomes

        return self._transaction(body)

    def answers_sent(self, keys: Sequence[str], answer: str) -> None:
        """The answer that claimed these results went out whole: they are delivered."""
        for chunk in _chunks(list(dict.fromkeys(keys))):
            marks = ",".join("?" * len(chunk))
            self.db.execute(
                "UPDATE tasks SET delivery = 'answered', delivered_at = ?, "  # noqa: S608
                f"task = '{{}}', config = '-' WHERE key IN ({marks}) AND delivery = 'answering' "
                "AND delivered_to = ?",
                (time.time(), *chunk, answer),
            )

    def answers_not_sent(self, keys: Sequence[str], answer: str) -> None:
        """The client hung up before the answer went out: the writer writes them now."""
        for chunk in _chunks(list(dict.fromkeys(keys))):
            marks = ",".join("?" * len(chunk))
            self.db.execute(
                "UPDATE tasks SET delivery = NULL, delivered_at = NULL, "  # noqa: S608
                "delivered_to = NULL, wanted_until = 0 "
                f"WHERE key IN ({marks}) AND delivery = 'answering' AND delivered_to = ?",
                (*chunk, answer),
            )

    # -- the background reader ----------------------------------------------------------

    def claim_next(self, most_urgent_only: bool) -> Claimed | None:
        """The next queued task, now this process's to read; people's tasks first."""
        limit = int(Priority.PEOPLE) if most_urgent_only else int(Priority.BULK)
        row = self.db.execute(
            "UPDATE tasks SET state = 'reading', owner = ?, started_at = ? WHERE key = ("
            "SELECT key FROM tasks WHERE state = 'queued' AND priority <= ? AND scope = ? "
            "ORDER BY priority, seq LIMIT 1) "
            "RETURNING key, project, ls_project, task_id, model_version, config, task, priority, "
            "asked_by, ls_host",
            (self.owner, time.time(), limit, self.scope),
        ).fetchone()
        return None if row is None else self._claimed(row)

    def _claimed(self, row: sqlite3.Row, **extra: Any) -> Claimed:
        config = self.db.execute(
            "SELECT label_config FROM configs WHERE digest = ?", (row["config"],)
        ).fetchone()
        return Claimed(
            key=row["key"],
            project=row["project"],
            ls_project=row["ls_project"],
            task_id=row["task_id"],
            model_version=row["model_version"],
            label_config=config["label_config"] if config else "",
            task=json.loads(row["task"]),
            priority=Priority(row["priority"]),
            asked_by=row["asked_by"] or "-",
            ls_host=row["ls_host"],
            **extra,
        )

    # A task delivered, failed, or read with nowhere to write it needs neither its data
    # nor its label config any more: an answer sends the result, and asking again brings
    # both again (its key names that data). Kept, they made 40 anonymous requests (50 KB
    # of data per task, a 100 KB config each) 44.6 MB of rows. A result still to be
    # written keeps them: the write-back compares the data with Label Studio's own, and
    # reads the task again (with its config) when they differ. Cleared here, every
    # result looked forged, was read again, and none was ever written.
    def finish(self, key: str, result: list[dict[str, Any]], score: float) -> None:
        self.db.execute(
            "UPDATE tasks SET state = 'done', result = ?, score = ?, finished_at = ?, "
            "delivery = NULL, "
            "task = CASE WHEN ls_project IS NULL OR task_id IS NULL THEN '{}' ELSE task END, "
            "config = CASE WHEN ls_project IS NULL OR task_id IS NULL THEN '-' ELSE config END "
            "WHERE key = ? AND owner = ? AND state = 'reading'",
            (json.dumps(result), score, time.time(), key, self.owner),
        )

    def fail(self, key: str, reason: str, error: str) -> None:
        self.db.execute(
            "UPDATE tasks SET state = 'failed', reason = ?, error = ?, finished_at = ?, "
            "task = '{}', config = '-' WHERE key = ? AND owner = ? AND state = 'reading'",
            (reason, error, time.time(), key, self.owner),
        )

    def put_back(self, key: str) -> None:
        """A task claimed and not read (stopping): queued again, for whoever starts next."""
        self.db.execute(
            "UPDATE tasks SET state = 'queued', owner = NULL WHERE key = ? AND owner = ? "
            "AND state = 'reading'",
            (key, self.owner),
        )

    # -- a process that reads and writes tasks itself (`ocr-backend annotate`) -----------

    def claim_direct(self, entry: Entry, label_config: str, listed_at: float) -> bool:
        """Whether this process now reads `entry` itself (a row `reading`, owned here).

        Not when someone else has it: queued, being read, read and waiting, or
        delivered since `listed_at` (when Label Studio said the task lacked it).
        """
        now = time.time()

        def body(db: sqlite3.Connection) -> bool:
            db.execute(
                "INSERT OR IGNORE INTO configs (digest, label_config) VALUES (?, ?)",
                (entry.config_digest, label_config),
            )
            row = db.execute(
                "SELECT state, delivery, delivered_at FROM tasks WHERE key = ?", (entry.key,)
            ).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO tasks (key, seq, project, ls_project, task_id, model_version, "
                    "config, task, priority, state, owner, asked_by, created_at, started_at, "
                    "scope, ls_host) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'reading', ?, ?, ?, ?, ?, ?)",
                    (
                        entry.key,
                        time.time_ns() // 1000,
                        entry.project,
                        entry.ls_project,
                        entry.task_id,
                        entry.model_version,
                        entry.config_digest,
                        json.dumps(entry.task),
                        int(Priority.BULK),
                        self.owner,
                        entry.asked_by,
                        now,
                        now,
                        self.scope,
                        entry.ls_host,
                    ),
                )
                return True
            lost = (
                row["delivery"] in ("answered", "written")
                and (row["delivered_at"] or 0) < listed_at
            )
            if row["state"] != "failed" and not lost:
                return False
            db.execute(
                "UPDATE tasks SET state = 'reading', owner = ?, started_at = ?, result = NULL, "
                "delivery = NULL, delivered_to = NULL, delivered_at = NULL, reason = NULL, "
                "error = NULL, task = ? WHERE key = ?",
                (self.owner, now, json.dumps(entry.task), entry.key),
            )
            return True

        return self._transaction(body)

    def finish_to_write(
        self, key: str, result: list[dict[str, Any]], score: float
    ) -> Claimed | None:
        """Read here, and now this process's to write (no one else may deliver it)."""
        now = time.time()
        row = self.db.execute(
            "UPDATE tasks SET state = 'done', result = ?, score = ?, finished_at = ?, "
            "delivery = 'writing', delivered_to = ?, delivered_at = ? "
            "WHERE key = ? AND owner = ? AND state = 'reading' "
            "RETURNING key, project, ls_project, task_id, model_version, config, task, "
            "priority, asked_by, ls_host, write_attempts",
            (json.dumps(result), score, now, self.owner, now, key, self.owner),
        ).fetchone()
        if row is None:
            return None
        return self._claimed(row, result=result, score=score, write_attempts=row["write_attempts"])

    def delivery_of(self, key: str) -> tuple[str | None, str | None]:
        """A row's delivery and its last write error."""
        row = self.db.execute(
            "SELECT delivery, write_error FROM tasks WHERE key = ?", (key,)
        ).fetchone()
        return (row["delivery"], row["write_error"]) if row else (None, None)

    # -- the background writer ----------------------------------------------------------

    def claim_writes(self, limit: int) -> list[Claimed]:
        """Results no answer took in time, now this process's to write through the API.

        Also answers claimed and never confirmed sent: unsure, so checked first.
        """
        now = time.time()

        def body(db: sqlite3.Connection) -> list[Claimed]:
            rows = db.execute(
                "SELECT key, delivery FROM tasks WHERE state = 'done' AND scope = ? "
                "AND ((delivery IS NULL OR delivery = 'unsure') AND wanted_until < ? "
                "AND write_after <= ? OR delivery = 'answering' AND delivered_at < ?) "
                "AND ls_project IS NOT NULL AND task_id IS NOT NULL ORDER BY seq LIMIT ?",
                (self.scope, now, now, now - ANSWERING_STALE_S, limit),
            ).fetchall()
            claims = []
            for row in rows:
                claimed = db.execute(
                    "UPDATE tasks SET delivery = 'writing', delivered_to = ?, delivered_at = ? "
                    "WHERE key = ? RETURNING key, project, ls_project, task_id, model_version, "
                    "config, task, priority, asked_by, result, score, ls_host, write_attempts",
                    (self.owner, now, row["key"]),
                ).fetchone()
                claims.append(
                    self._claimed(
                        claimed,
                        result=json.loads(claimed["result"]),
                        score=claimed["score"],
                        unsure=row["delivery"] in ("unsure", "answering"),
                        write_attempts=claimed["write_attempts"],
                    )
                )
            return claims

        return self._transaction(body)

    def written(self, key: str) -> None:
        self.db.execute(
            "UPDATE tasks SET delivery = 'written', delivered_at = ?, write_error = NULL, "
            "task = '{}', config = '-' WHERE key = ? AND delivery = 'writing' "
            "AND delivered_to = ?",
            (time.time(), key, self.owner),
        )

    def write_failed(
        self,
        key: str,
        error: str,
        retry_in: float,
        *,
        unsure: bool,
        attempt: bool = True,
        attempts: int = 0,
    ) -> None:
        """Not written: tried again after `retry_in` seconds.

        Kept for the next answer that asks for it, unless `unsure`: a write whose outcome
        is unknown (cut short, answered late, or a check that failed) stays unsure, and
        is checked against Label Studio before it is written again.
        """
        self.db.execute(
            "UPDATE tasks SET delivery = ?, delivered_to = NULL, delivered_at = NULL, "
            "write_error = ?, write_after = ?, write_attempts = MAX(write_attempts + ?, ?) "
            "WHERE key = ? AND delivery = 'writing' AND delivered_to = ?",
            (
                "unsure" if unsure else None,
                error,
                time.time() + retry_in,
                int(attempt),
                attempts,
                key,
                self.owner,
            ),
        )

    def refusals(self, project: str) -> int:
        """The most failed writes of one of the project's results still to be written."""
        row = self.db.execute(
            "SELECT MAX(write_attempts) FROM tasks WHERE project = ? AND scope = ? "
            "AND state != 'failed' AND (delivery IS NULL OR delivery IN ('unsure', 'writing'))",
            (project, self.scope),
        ).fetchone()
        return int(row[0] or 0)

    def hold_writes(self, project: str, until: float, error: str) -> int:
        """No write of `project` before `until` (Label Studio refused one), of the results
        waiting and of those still being read: one write probes at a time."""
        return self.db.execute(
            "UPDATE tasks SET write_after = MAX(write_after, ?), write_error = ? "
            "WHERE project = ? AND scope = ? AND state != 'failed' "
            "AND (delivery IS NULL OR delivery = 'unsure')",
            (until, error, project, self.scope),
        ).rowcount

    def resume_writes(self, project: str | None = None) -> int:
        """Writes held back or stopped try again now (a /setup, or a start)."""
        return self.db.execute(
            "UPDATE tasks SET write_after = 0, write_attempts = 0 WHERE scope = ? "
            "AND state != 'failed' AND (delivery IS NULL OR delivery = 'unsure') "
            "AND (write_after > ? OR write_attempts > 0) AND (? IS NULL OR project = ?)",
            (self.scope, time.time(), *[None if project is None else stored_project(project)] * 2),
        ).rowcount

    def read_again(self, key: str, task: dict[str, Any]) -> None:
        """A result read from data Label Studio does not hold: read its own data instead."""
        self.db.execute(
            "UPDATE tasks SET state = 'queued', owner = NULL, result = NULL, score = NULL, "
            "delivery = NULL, delivered_to = NULL, delivered_at = NULL, task = ?, "
            "write_error = NULL, write_attempts = 0, write_after = 0, wanted_until = 0 "
            "WHERE key = ? AND delivery = 'writing' AND delivered_to = ?",
            (json.dumps(task), key, self.owner),
        )

    # -- processes come and go --------------------------------------------------------

    def heartbeat(self) -> None:
        host, pid = self.owner.split(":")[:2]
        self.db.execute(
            "INSERT INTO owners (owner, host, pid, seen_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (owner) DO UPDATE SET seen_at = excluded.seen_at",
            (self.owner, host, int(pid), time.time()),
        )

    def recover(self) -> tuple[int, int]:
        """Work claimed by processes that are gone: reads queued again, writes checked.

        Gone: on this host with no such pid, or silent for OWNER_TIMEOUT_S.
        """
        here = socket.gethostname()

        def body(db: sqlite3.Connection) -> tuple[int, int]:
            gone = [
                row["owner"]
                for row in db.execute("SELECT owner, host, pid, seen_at FROM owners")
                if row["owner"] != self.owner
                and (
                    (row["host"] == here and not pid_alive(row["pid"]))
                    or row["seen_at"] < time.time() - OWNER_TIMEOUT_S
                )
            ]
            # Claims by owners never registered (killed before their first heartbeat).
            known = {row["owner"] for row in db.execute("SELECT owner FROM owners")}
            for row in db.execute(
                "SELECT DISTINCT owner FROM tasks WHERE state = 'reading' OR delivery = 'writing'"
            ).fetchall():
                owner = row["owner"] or ""
                if owner and owner not in known and owner != self.owner:
                    gone.append(owner)
            reads = writes = 0
            for owner in set(gone):
                reads += db.execute(
                    "UPDATE tasks SET state = 'queued', owner = NULL "
                    "WHERE state = 'reading' AND owner = ?",
                    (owner,),
                ).rowcount
                writes += db.execute(
                    "UPDATE tasks SET delivery = 'unsure', write_error = ? "
                    "WHERE delivery = 'writing' AND delivered_to = ?",
                    (UNSURE, owner),
                ).rowcount
                db.execute("DELETE FROM owners WHERE owner = ?", (owner,))
            return reads, writes

        return self._transaction(body)

    def forget_delivered(self, older_than_s: float, max_projects: int | None = None) -> int:
        """Rows delivered or failed long ago, or of projects beyond the `max_projects`
        latest, and label configs no row needs: they only make the file grow."""
        cutoff = time.time() - older_than_s
        settled = "(delivery IN ('answered', 'written') OR state = 'failed')"

        def body(db: sqlite3.Connection) -> int:
            forgotten = db.execute(
                "DELETE FROM tasks WHERE (delivery IN ('answered', 'written') "
                "AND delivered_at < ?) OR (state = 'failed' AND finished_at < ?)",
                (cutoff, cutoff),
            ).rowcount
            if max_projects is not None:
                # Anyone may name a project: what is settled for those beyond the latest
                # MAX_PROJECTS goes (work still queued or unwritten stays).
                forgotten += db.execute(
                    f"DELETE FROM tasks WHERE {settled} AND project NOT IN ("  # noqa: S608
                    "SELECT project FROM tasks GROUP BY project "
                    "ORDER BY MAX(created_at) DESC LIMIT ?)",
                    (max_projects,),
                ).rowcount
            db.execute(
                "DELETE FROM configs WHERE digest NOT IN (SELECT DISTINCT config FROM tasks)"
            )
            return forgotten

        return self._transaction(body)


ANSWER_COLUMNS = "key, state, delivery, result, score, reason, error, delivered_to, delivered_at"
UNSURE = "a write was cut short by a stop; Label Studio is asked whether it holds it"


CHUNK = 500  # keys per query: well under SQLite's 32,766 host parameters


def _chunks(items: Sequence[str], size: int = CHUNK) -> list[Sequence[str]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def job_scope(settings: Settings) -> str:
    """Which rows of a shared queue file are this service's: those of its Label Studio.

    LABEL_STUDIO_HOST names it; without one, the Label Studio of each row is the host
    /setup named when it was queued, and such services share the rows among them.
    """
    host = settings.label_studio_host
    return host.rstrip("/") if host else ""
