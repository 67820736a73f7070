"""How far each project's job has come: counts, failures with reasons, images/s, time left.

Read from the queue on disk, so every worker process (and /jobs, whichever
process answers it) sees the same figures.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..metrics import JOB_IMAGES_PER_SECOND, JOB_SECONDS_LEFT, JOB_TASKS
from .store import WRITES_STOPPED, JobStore

log = logging.getLogger("ocr_backend.jobs")

RATE_WINDOW_S = 60.0  # images/s over the last minute
SHOWN_S = 24 * 3600.0  # a job finished longer ago than this is not listed
REASONS_SHOWN = 5


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


def job_progress(store: JobStore) -> list[JobProgress]:
    """Every project with tasks in the last day; runs on the store's thread."""
    now = time.time()
    jobs: dict[str, JobProgress] = {}
    for row in store.rows(
        "SELECT project, state, delivery, reason, COUNT(*) AS n, MIN(created_at) AS first "
        "FROM tasks WHERE scope = ? AND (created_at > ? OR state IN ('queued', 'reading') "
        "OR (state = 'done' AND delivery IS NULL)) GROUP BY project, state, delivery, reason",
        (store.scope, now - SHOWN_S),
    ):
        job = jobs.setdefault(row["project"], JobProgress(project=row["project"]))
        n = int(row["n"])
        job.started_at = min(job.started_at or row["first"], row["first"])
        state, delivery = row["state"], row["delivery"]
        if state == "queued":
            job.queued += n
        elif state == "reading":
            job.reading += n
        elif state == "failed":
            job.failed += n
            reason = row["reason"] or "unknown"
            job.failures[reason] = job.failures.get(reason, 0) + n
        elif delivery == "answered":
            job.answered += n
        elif delivery == "written":
            job.written += n
        else:
            job.done_waiting += n
    for job in jobs.values():
        job.failure_examples = [
            row["error"]
            for row in store.rows(
                "SELECT DISTINCT error FROM tasks WHERE project = ? AND scope = ? "
                "AND state = 'failed' LIMIT ?",
                (job.project, store.scope, REASONS_SHOWN),
            )
        ]
        job.not_written = [
            row["write_error"]
            for row in store.rows(
                "SELECT DISTINCT write_error FROM tasks WHERE project = ? AND scope = ? "
                "AND state = 'done' AND (delivery IS NULL OR delivery = 'unsure') "
                "AND write_error IS NOT NULL LIMIT ?",
                (job.project, store.scope, REASONS_SHOWN),
            )
        ]
        job.writes_stopped = store.rows(
            "SELECT COUNT(*) FROM tasks WHERE project = ? AND scope = ? AND state = 'done' "
            "AND (delivery IS NULL OR delivery = 'unsure') AND write_after >= ?",
            (job.project, store.scope, WRITES_STOPPED),
        )[0][0]
        (recent, first_start) = store.rows(
            "SELECT COUNT(*), MIN(started_at) FROM tasks WHERE project = ? AND scope = ? "
            "AND finished_at > ?",
            (job.project, store.scope, now - RATE_WINDOW_S),
        )[0]
        if recent and first_start:
            window = max(1.0, min(RATE_WINDOW_S, now - first_start))
            job.images_per_second = round(recent / window, 3)
        left = job.queued + job.reading
        if left and job.images_per_second > 0:
            job.seconds_left = round(left / job.images_per_second, 1)
        elif not left:
            job.seconds_left = 0.0
    return sorted(jobs.values(), key=lambda job: job.started_at or 0.0)


def publish_progress(jobs: list[JobProgress]) -> None:
    """The same figures as Prometheus gauges, one series per project and state."""
    for job in jobs:
        for state in ("queued", "reading", "done_waiting", "answered", "written", "failed"):
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
