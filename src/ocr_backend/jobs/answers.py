"""A /predict through the queue: answer by the deadline, leave the rest to the background.

Every task of the request goes into the queue on disk (or joins the same
task already there); the request waits until each is read or until
PREDICT_DEADLINE, then takes, in one atomic step, the results no one
delivered yet. Those go in the answer. A task not read by then comes back
without `result` (Label Studio stores the others and skips it) and is
written to Label Studio through its API once read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..label_studio.config import config_digest
from ..label_studio.schemas import NotPredicted, Prediction, Task
from ..label_studio.storage import LabelStudio
from ..metrics import JOB_ANSWER_ITEMS
from ..priority import priority_of
from .runner import POLL_S, JobRunner
from .store import NO_PROJECT, Delivery, Entry, JobStore, Outcome, State, stored_project

log = logging.getLogger(__name__)


def task_key(
    project: str,
    task: Task,
    model_version: str,
    *,
    ls_project: int | None = None,
    ls_host: str | None = None,
) -> str:
    """One task of one project for one model version, with the data it had.

    The data is part of it: a task whose image changed is a new piece of work. A
    task of a known Label Studio project has one key whoever queues it (a /predict,
    whatever its project string, or `ocr-backend annotate`), so the queue's atomic
    claims deliver it once.
    """
    if ls_project is not None and task.id is not None:
        who: list[Any] = ["label-studio", ls_host, ls_project]
    else:
        who = [project]
    identity = json.dumps([*who, task.id, model_version, task.data], sort_keys=True, default=str)
    return hashlib.sha256(identity.encode()).hexdigest()


MAX_ID = 2**63 - 1  # Label Studio's ids are 64-bit, as the queue's SQLite integers are


def label_studio_project(project: str | None, task: Task) -> int | None:
    """The project's id in Label Studio: `"<id>.<created>"`, else the task's `project`."""
    if project:
        head = project.split(".", 1)[0]
        if head.isascii() and head.isdigit() and int(head) <= MAX_ID:
            return int(head)
    value = (task.model_extra or {}).get("project")
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID
    return value if ok else None


@dataclass(frozen=True)
class AnswerSummary:
    """What the answer held, for the request's log line."""

    answered: int
    pending: int
    failed: int
    delivered: int
    not_written_because: str | None

    def describe(self) -> str:
        parts = [f"answered={self.answered}"]
        if self.pending:
            parts.append(f"pending={self.pending}")
            if self.not_written_because:
                parts.append(f"(not written, kept for the next ask: {self.not_written_because})")
        if self.delivered:
            parts.append(f"already_delivered={self.delivered}")
        return " ".join(parts)


class QueuedPredictions:
    """/predict's way through the queue."""

    def __init__(
        self,
        store: JobStore,
        runner: JobRunner,
        model_version: str,
        version_for: Callable[[str | None], str] | None = None,
    ) -> None:
        self.store = store
        self.runner = runner
        self.model_version = model_version
        # A project's own model version, when a fine-tuned model serves it (docs/training.md).
        self.version_for = version_for or (lambda project: model_version)

    async def predict(
        self,
        tasks: Sequence[Task],
        *,
        project: str | None,
        label_config: str,
        label_studio: LabelStudio,
        deadline: float,
        request_id: str,
    ) -> tuple[list[Prediction | NotPredicted], AnswerSummary, list[str]]:
        """One entry per task, in order, by `deadline` (a time.monotonic() instant), and
        the keys of the results this answer carries: `answers_sent` once it is sent,
        `answers_not_sent` when the client is gone."""
        if project is not None:
            project = stored_project(project)
        scope = project or NO_PROJECT
        version = self.version_for(project)
        digest = config_digest(label_config)
        entries = []
        for task in tasks:
            ls_project = label_studio_project(project, task)
            key = task_key(
                scope,
                task,
                version,
                ls_project=ls_project,
                ls_host=label_studio.host,
            )
            entries.append(
                Entry(
                    key=key,
                    project=scope,
                    ls_project=ls_project,
                    task_id=task.id,
                    model_version=version,
                    config_digest=digest,
                    task=task.model_dump(mode="json"),
                    asked_by=request_id,
                    ls_host=label_studio.host,  # fixed now: a later /setup does not move it
                )
            )
        keys = [entry.key for entry in entries]
        priority = priority_of(tasks)
        # Background writers hold back until then (wall clock: other processes read it).
        wanted_until = time.time() + max(0.0, deadline - time.monotonic()) + 1.0
        queued = await self.store.run(
            self.store.submit, entries, {digest: label_config}, priority, wanted_until
        )
        if queued:
            self.runner.work.notify()
        unsettled: int | None = 0  # where the first keys still being read begin
        while not self.runner.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            unsettled = await self.store.run(self.store.first_unsettled, keys, unsettled)
            if unsettled is None:
                break
            await self.runner.changed.wait(min(POLL_S, left))
        outcomes = await self.store.run(self.store.claim_answers, keys, request_id)
        writable = label_studio.host is not None and label_studio.auth is not None
        items = [
            self._item(outcomes.get(entry.key), writable and entry.task_id is not None, version)
            for entry in entries
        ]
        carried = [key for key, outcome in outcomes.items() if outcome.answered_here]
        return items, self._summary(items, label_studio, entries), carried

    async def answers_sent(self, keys: list[str], request_id: str) -> None:
        if keys:
            await self.store.run(self.store.answers_sent, keys, request_id)

    async def answers_not_sent(self, keys: list[str], request_id: str) -> None:
        if keys:
            await self.store.run(self.store.answers_not_sent, keys, request_id)
            self.runner.work.notify()
            log.warning(
                "request %s: the client hung up before its answer was sent; %d result(s) "
                "read for it are written to Label Studio through its API instead",
                request_id,
                len(keys),
            )

    def _item(
        self, outcome: Outcome | None, writable: bool, version: str
    ) -> Prediction | NotPredicted:
        if outcome is not None and outcome.answered_here:
            JOB_ANSWER_ITEMS.labels("answered").inc()
            return Prediction(
                result=outcome.result or [], score=outcome.score or 0.0, model_version=version
            )
        if outcome is not None and outcome.state is State.FAILED:
            JOB_ANSWER_ITEMS.labels("failed").inc()
            return NotPredicted(
                model_version=version,
                status="failed",
                reason=outcome.reason or "failed",
                error=outcome.error or "failed",
            )
        if outcome is not None and outcome.state is State.DONE:
            JOB_ANSWER_ITEMS.labels("delivered").inc()
            how = (
                f"given in the answer to request {outcome.delivered_to}"
                if outcome.delivery is Delivery.ANSWERED
                else "written to Label Studio through its API"
            )
            return NotPredicted(
                model_version=version,
                status="delivered",
                reason="delivered",
                error=f"already read: its prediction was {how}; it is not sent twice",
            )
        JOB_ANSWER_ITEMS.labels("pending").inc()
        then = (
            "it will be written to Label Studio through its API"
            if writable
            else "it will be in the answer the next time Label Studio asks for it"
        )
        return NotPredicted(
            model_version=version,
            status="pending",
            reason="deadline",
            error=f"not read by PREDICT_DEADLINE; it is being read in the background and {then}",
        )

    @staticmethod
    def _summary(
        items: list[Prediction | NotPredicted], label_studio: LabelStudio, entries: list[Entry]
    ) -> AnswerSummary:
        counts = Counter(
            item.status if isinstance(item, NotPredicted) else "answered" for item in items
        )
        because = None
        if counts["pending"]:
            if label_studio.host is None:
                because = "no Label Studio host known (LABEL_STUDIO_HOST)"
            elif label_studio.auth is None:
                because = "no token for Label Studio (LABEL_STUDIO_ACCESS_TOKEN)"
            elif any(entry.task_id is None for entry in entries):
                because = "some tasks have no id"
        return AnswerSummary(
            answered=counts["answered"],
            pending=counts["pending"],
            failed=counts["failed"],
            delivered=counts["delivered"],
            not_written_because=because,
        )
