"""A /predict through the queue: answer by the deadline, leave the rest to the background.

Every task of the request goes into the queue on disk (or joins the same
task already there); the request waits until each is read or until
PREDICT_DEADLINE, then takes, in one atomic step, the results no one
delivered yet. Those go in the answer. A task not read by then comes back
without `result` (Label Studio stores the others and skips it) and is
written to Label Studio through its API once read. Tasks are queued a chunk
at a time off the event loop; those not queued by the deadline come back the
same way and are queued after the answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import anyio.to_thread

from ..label_studio.config import config_digest
from ..label_studio.schemas import NotPredicted, Task
from ..label_studio.storage import LabelStudio
from ..metrics import JOB_ANSWER_ITEMS
from ..priority import Priority, priority_of
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
    still_queueing: int = 0  # tasks not queued yet when answered (pending): queued after

    def describe(self) -> str:
        parts = [f"answered={self.answered}"]
        if self.pending:
            parts.append(f"pending={self.pending}")
            if self.not_written_because:
                parts.append(f"(not written, kept for the next ask: {self.not_written_because})")
        if self.delivered:
            parts.append(f"already_delivered={self.delivered}")
        if self.still_queueing:
            parts.append(f"queued_after_the_answer={self.still_queueing}")
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
        # Requests answered before all their tasks were queued: queueing the rest.
        self._queueing: set[asyncio.Task[None]] = set()

    async def predict(
        self,
        tasks: Sequence[Task],
        *,
        project: str | None,
        label_config: str,
        label_studio: LabelStudio,
        deadline: float,
        request_id: str,
    ) -> tuple[list[dict[str, Any]], AnswerSummary, list[str]]:
        """One entry per task, in order, by `deadline` (a time.monotonic() instant), as the
        JSON of a Prediction or a NotPredicted, and the keys of the results this answer
        carries: `answers_sent` once it is sent, `answers_not_sent` when the client is gone.

        The tasks are queued in chunks, each built in a worker thread: 500,000 tasks built
        and queued in one go held the event loop for 12 s, and took 29 s with
        PREDICT_DEADLINE=5. Tasks not queued by the deadline are answered `pending`, as
        tasks not read by then are, and go on being queued after the answer.
        """
        if project is not None:
            project = stored_project(project)
        request = QueuedRequest(
            scope=project or NO_PROJECT,
            project=project,
            version=self.version_for(project),
            digest=config_digest(label_config),
            label_config=label_config,
            label_studio=label_studio,
            priority=priority_of(tasks),
            request_id=request_id,
            deadline=deadline,
        )
        keys: list[str] = []  # of the tasks queued so far, in task order
        queueing = asyncio.create_task(self._queue(tasks, request, keys))
        self._queueing.add(queueing)
        queueing.add_done_callback(self._queueing.discard)
        queueing.add_done_callback(partial(_log_failure, request_id))
        await asyncio.wait({queueing}, timeout=max(0.0, deadline - time.monotonic()))
        if queueing.done():
            queueing.result()  # a store that failed fails this request, as before
            unsettled: int | None = 0  # where the first keys still being read begin
            while not self.runner.stopping.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                unsettled = await self.store.run(self.store.first_unsettled, keys, unsettled)
                if unsettled is None:
                    break
                await self.runner.changed.wait(min(POLL_S, left))
        answered = list(keys)  # the rest are still being queued: pending
        outcomes = await self.store.run(
            self.store.claim_answers, answered, request_id, settled_only=True
        )
        writable = label_studio.host is not None and label_studio.auth is not None
        items, summary = await anyio.to_thread.run_sync(
            answer_items, tasks, answered, outcomes, writable, request
        )
        carried = [key for key, outcome in outcomes.items() if outcome.answered_here]
        return items, summary, carried

    async def _queue(self, tasks: Sequence[Task], request: QueuedRequest, keys: list[str]) -> None:
        """Queue `tasks` a chunk at a time, adding each chunk's keys to `keys` once queued."""
        for offset in range(0, len(tasks), QUEUE_CHUNK):
            if self.runner.stopping.is_set():
                return  # not queued: Label Studio asks for them again
            chunk = tasks[offset : offset + QUEUE_CHUNK]
            entries = await anyio.to_thread.run_sync(queue_entries, chunk, request)
            # Background writers hold back until then (wall clock: other processes read it).
            left = max(0.0, request.deadline - time.monotonic())
            queued = await self.store.run(
                self.store.submit,
                entries,
                {request.digest: request.label_config},
                request.priority,
                time.time() + left + 1.0,
            )
            keys.extend(entry.key for entry in entries)
            if queued:
                self.runner.work.notify()

    async def close(self) -> None:
        """Stop queueing what answered requests left (before the store closes)."""
        for queueing in list(self._queueing):
            queueing.cancel()
        await asyncio.gather(*self._queueing, return_exceptions=True)

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


Status = Literal["failed", "pending", "delivered"]
QUEUE_CHUNK = 2000  # tasks built and queued at a time: about 40 ms of work each


@dataclass(frozen=True)
class QueuedRequest:
    """What every task of one /predict is queued and answered with."""

    scope: str
    project: str | None
    version: str
    digest: str
    label_config: str
    label_studio: LabelStudio
    priority: Priority
    request_id: str
    deadline: float


def _log_failure(request_id: str, queueing: asyncio.Task[None]) -> None:
    """A failure to queue is this request's error; after its answer, only the log has it."""
    if not queueing.cancelled() and (exc := queueing.exception()) is not None:
        log.error("request %s: queueing its tasks failed: %s", request_id, exc)


def queue_entries(tasks: Sequence[Task], request: QueuedRequest) -> list[Entry]:
    """The queue's rows for `tasks` (in a worker thread: keys are hashes of each task)."""
    host = request.label_studio.host
    entries = []
    for task in tasks:
        ls_project = label_studio_project(request.project, task)
        entries.append(
            Entry(
                key=task_key(
                    request.scope, task, request.version, ls_project=ls_project, ls_host=host
                ),
                project=request.scope,
                ls_project=ls_project,
                task_id=task.id,
                model_version=request.version,
                config_digest=request.digest,
                task=task.model_dump(mode="json"),
                asked_by=request.request_id,
                ls_host=host,  # fixed now: a later /setup does not move it
            )
        )
    return entries


def answer_items(
    tasks: Sequence[Task],
    keys: Sequence[str],
    outcomes: dict[str, Outcome],
    writable: bool,
    request: QueuedRequest,
) -> tuple[list[dict[str, Any]], AnswerSummary]:
    """Each task's entry in the answer, as JSON, and what the answer holds.

    Run in a worker thread: for 500,000 tasks this is seconds of work. Entries that
    say the same (pending, for one) are one object, sent as many times as needed.
    """
    version = request.version
    same: dict[tuple[str, ...], dict[str, Any]] = {}

    def not_predicted(status: Status, reason: str, error: str) -> dict[str, Any]:
        item = same.get((status, reason, error))
        if item is None:
            item = NotPredicted(
                model_version=version, status=status, reason=reason, error=error
            ).model_dump(mode="json")
            same[(status, reason, error)] = item
        return item

    counts: Counter[str] = Counter()
    pending_ids = _pending_error(writable)
    pending_no_id = _pending_error(False)
    items: list[dict[str, Any]] = []
    for index, task in enumerate(tasks):
        outcome = outcomes.get(keys[index]) if index < len(keys) else None
        if outcome is not None and outcome.answered_here:
            counts["answered"] += 1
            items.append(
                {
                    "result": outcome.result or [],
                    "score": float(outcome.score or 0.0),
                    "model_version": version,
                }
            )
        elif outcome is not None and outcome.state is State.FAILED:
            counts["failed"] += 1
            items.append(
                not_predicted(
                    "failed", reason=outcome.reason or "failed", error=outcome.error or "failed"
                )
            )
        elif outcome is not None and outcome.state is State.DONE:
            counts["delivered"] += 1
            how = (
                f"given in the answer to request {outcome.delivered_to}"
                if outcome.delivery is Delivery.ANSWERED
                else "written to Label Studio through its API"
            )
            error = f"already read: its prediction was {how}; it is not sent twice"
            items.append(not_predicted("delivered", reason="delivered", error=error))
        else:
            counts["pending"] += 1
            why = pending_ids if task.id is not None else pending_no_id
            items.append(not_predicted("pending", reason="deadline", error=why))
    for status, count in counts.items():
        JOB_ANSWER_ITEMS.labels(status).inc(count)
    because = None
    label_studio = request.label_studio
    if counts["pending"]:
        if label_studio.host is None:
            because = "no Label Studio host known (LABEL_STUDIO_HOST)"
        elif label_studio.auth is None:
            because = "no token for Label Studio (LABEL_STUDIO_ACCESS_TOKEN)"
        elif any(task.id is None for task in tasks):
            because = "some tasks have no id"
    summary = AnswerSummary(
        answered=counts["answered"],
        pending=counts["pending"],
        failed=counts["failed"],
        delivered=counts["delivered"],
        not_written_because=because,
        still_queueing=len(tasks) - len(keys),
    )
    return items, summary


def _pending_error(writable: bool) -> str:
    then = (
        "it will be written to Label Studio through its API"
        if writable
        else "it will be in the answer the next time Label Studio asks for it"
    )
    return f"not read by PREDICT_DEADLINE; it is being read in the background and {then}"
