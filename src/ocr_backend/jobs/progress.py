"""How far each project's job has come: counts, failures with reasons, images/s, time left.

Read from the queue on disk, so every worker process (and /jobs, whichever
process answers it) sees the same figures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..metrics import JOB_IMAGES_PER_SECOND, JOB_SECONDS_LEFT, JOB_TASKS
from .store import WRITES_STOPPED, Delivery, JobStore, State

log = logging.getLogger("ocr_backend.jobs")

RATE_WINDOW_S = 60.0  # images/s over the last minute
SHOWN_S = 24 * 3600.0  # a job finished longer ago than this is not listed
REASONS_SHOWN = 5
# Anyone may name a project in /predict: 20,000 invented names made 160,000 metric series
# (24.5 MB per scrape) and an 8.7 MB /jobs. At most this many are listed on their own, the
# projects /setup knows first, then those still reading, then the latest; the rest are
# summed into one entry (and one series) named OTHERS.
JOBS_SHOWN = 50
OTHERS = "(others)"
STATES = ("queued", "reading", "done_waiting", "answered", "written", "failed")


@dataclass
class JobProgress:
    """One project's tasks, by where they are."""

    project: str
    queued: int = 0
    reading: int = 0
    done_waiting: int = 0  # read, neither answered nor written yet
    answered: int = 0  # given in a /predict answer
    written: int = 0  # written to Label Studio through its API
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # reason: count
    failure_examples: list[str] = field(default_factory=list)
    not_written: list[str] = field(default_factory=list)  # why results wait for an answer
    writes_stopped: int = 0  # results Label Studio refused too often: until /setup or a start
    images_per_second: float = 0.0
    seconds_left: float | None = None
    started_at: float | None = None

    @property
    def total(self) -> int:
        return (
            self.queued
            + self.reading
            + self.done_waiting
            + self.answered
            + self.written
            + self.failed
        )

    @property
    def active(self) -> bool:
        """Still reading; results waiting to be delivered do not count."""
        return bool(self.queued or self.reading)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total, "active": self.active}


def job_progress(
    store: JobStore, known: Callable[[str], bool] = lambda project: True
) -> list[JobProgress]:
    """Projects with tasks in the last day, at most JOBS_SHOWN and OTHERS; on the store's thread.

    `known`: whether /setup knows a project (those are listed before invented ones).
    """
    now = time.time()
    jobs: dict[str, JobProgress] = {}
    for count in counts(store, since=now - SHOWN_S):
        job = jobs.setdefault(count.project, JobProgress(project=count.project))
        n = count.tasks
        job.started_at = min(job.started_at or count.first_created, count.first_created)
        if count.state is State.QUEUED:
            job.queued += n
        elif count.state is State.READING:
            job.reading += n
        elif count.state is State.FAILED:
            job.failed += n
            reason = count.reason or "unknown"
            job.failures[reason] = job.failures.get(reason, 0) + n
        elif count.delivery is Delivery.ANSWERED:
            job.answered += n
        elif count.delivery is Delivery.WRITTEN:
            job.written += n
        else:
            job.done_waiting += n
    ranked = sorted(
        jobs.values(),
        key=lambda job: (not known(job.project), not job.active, -(job.started_at or 0.0)),
    )
    shown = ranked[:JOBS_SHOWN]
    for job in shown:
        job.failure_examples = failure_examples(store, job.project, REASONS_SHOWN)
        job.not_written = write_errors(store, job.project, REASONS_SHOWN)
        job.writes_stopped = writes_stopped(store, job.project)
        recent, first_start = finished_since(store, job.project, now - RATE_WINDOW_S)
        if recent and first_start:
            window = max(1.0, min(RATE_WINDOW_S, now - first_start))
            job.images_per_second = round(recent / window, 3)
        left = job.queued + job.reading
        if left and job.images_per_second > 0:
            job.seconds_left = round(left / job.images_per_second, 1)
        elif not left:
            job.seconds_left = 0.0
    listed = sorted(shown, key=lambda job: job.started_at or 0.0)
    if len(ranked) > JOBS_SHOWN:
        listed.append(summed(OTHERS, ranked[JOBS_SHOWN:]))
    return listed


def summed(name: str, jobs: list[JobProgress]) -> JobProgress:
    """The counts of several projects as one entry (no pace: it is not one job)."""
    total = JobProgress(project=name)
    for job in jobs:
        for state in STATES:
            setattr(total, state, getattr(total, state) + getattr(job, state))
        for reason, count in job.failures.items():
            total.failures[reason] = total.failures.get(reason, 0) + count
        starts = [start for start in (total.started_at, job.started_at) if start is not None]
        total.started_at = min(starts) if starts else None
    return total


_published: set[str] = set()


def publish_progress(jobs: list[JobProgress]) -> None:
    """The same figures as Prometheus gauges, one series per project listed and state.

    A project no longer listed loses its series (with WORKERS > 1 prometheus-client
    keeps a removed series' last value in its files until the process restarts).
    """
    for gone in _published - {job.project for job in jobs}:
        for state in STATES:
            JOB_TASKS.remove(gone, state)
        JOB_IMAGES_PER_SECOND.remove(gone)
        JOB_SECONDS_LEFT.remove(gone)
    _published.clear()
    for job in jobs:
        _published.add(job.project)
        for state in STATES:
            JOB_TASKS.labels(job.project, state).set(getattr(job, state))
        JOB_IMAGES_PER_SECOND.labels(job.project).set(job.images_per_second)
        JOB_SECONDS_LEFT.labels(job.project).set(
            job.seconds_left if job.seconds_left is not None else -1
        )


def log_progress(jobs: list[JobProgress]) -> None:
    for job in jobs:
        if not job.active:
            continue
        left = f"{job.seconds_left:.0f} s left" if job.seconds_left is not None else "time left ?"
        log.info(
            "job %s: %d/%d done (queued %d, reading %d, answered %d, written %d, "
            "waiting to be written %d, failed %d%s), %.2f images/s, %s",
            job.project,
            job.answered + job.written + job.done_waiting + job.failed,
            job.total,
            job.queued,
            job.reading,
            job.answered,
            job.written,
            job.done_waiting,
            job.failed,
            (": " + ", ".join(f"{r} {n}" for r, n in job.failures.items())) if job.failed else "",
            job.images_per_second,
            left,
        )


# -- the queries, on the store's thread -------------------------------------------------


@dataclass(frozen=True)
class Count:
    """How many tasks of one project are in one state (and delivery, and failure reason)."""

    project: str
    state: State
    delivery: Delivery | None
    reason: str | None
    tasks: int
    first_created: float


def counts(store: JobStore, since: float) -> list[Count]:
    """Tasks of this scope by project, state, delivery and failure reason: those
    created since `since`, and every one still queued, being read, or waiting to be
    delivered."""
    return [
        Count(
            project=row["project"],
            state=State(row["state"]),
            delivery=Delivery(row["delivery"]) if row["delivery"] else None,
            reason=row["reason"],
            tasks=int(row["n"]),
            first_created=row["first"],
        )
        for row in store.db.execute(
            "SELECT project, state, delivery, reason, COUNT(*) AS n, "
            "MIN(created_at) AS first FROM tasks WHERE scope = ? AND (created_at > ? "
            "OR state IN ('queued', 'reading') OR (state = 'done' AND delivery IS NULL)) "
            "GROUP BY project, state, delivery, reason",
            (store.scope, since),
        )
    ]


def failure_examples(store: JobStore, project: str, limit: int) -> list[str]:
    """Distinct errors of the project's failed tasks."""
    return [
        row["error"]
        for row in store.db.execute(
            "SELECT DISTINCT error FROM tasks WHERE project = ? AND scope = ? "
            "AND state = 'failed' LIMIT ?",
            (project, store.scope, limit),
        )
    ]


def write_errors(store: JobStore, project: str, limit: int) -> list[str]:
    """Why results read and not delivered were not written to Label Studio."""
    return [
        row["write_error"]
        for row in store.db.execute(
            "SELECT DISTINCT write_error FROM tasks WHERE project = ? AND scope = ? "
            "AND state = 'done' AND (delivery IS NULL OR delivery = 'unsure') "
            "AND write_error IS NOT NULL LIMIT ?",
            (project, store.scope, limit),
        )
    ]


def writes_stopped(store: JobStore, project: str) -> int:
    """How many of the project's results wait after Label Studio refused too often."""
    row = store.db.execute(
        "SELECT COUNT(*) FROM tasks WHERE project = ? AND scope = ? AND state = 'done' "
        "AND (delivery IS NULL OR delivery = 'unsure') AND write_after >= ?",
        (project, store.scope, WRITES_STOPPED),
    ).fetchone()
    return int(row[0])


def finished_since(store: JobStore, project: str, since: float) -> tuple[int, float | None]:
    """How many of the project's tasks finished since `since`, and when the first of
    them was started."""
    count, first_start = store.db.execute(
        "SELECT COUNT(*), MIN(started_at) FROM tasks WHERE project = ? AND scope = ? "
        "AND finished_at > ?",
        (project, store.scope, since),
    ).fetchone()
    return int(count), first_start
