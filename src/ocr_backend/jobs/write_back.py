"""Writing results to Label Studio through its API: checked first, once, and never hammered.

Before every write the task is read back from Label Studio (`GET
/api/tasks/<id>/`), and written only if

- it is still there, in the project the result was queued for;
- it has no prediction of this model version yet (a write answered late, cut
  short, or made by `ocr-backend annotate` is not made twice);
- its data is what was read. A /predict names task ids and data, and anyone
  who can reach /predict can send one: a result read from data Label Studio
  does not hold is thrown away and the task read again from Label Studio's own
  data, so nothing reaches Label Studio that its own data would not produce.

A write whose outcome is unknown (a time-out after sending, a cut connection,
a 5xx) stays unsure; so does one whose check failed. Label Studio refusing a
write (a revoked token, no access, no token at all) holds back every write of
that project, each wait twice the last, and after REFUSALS_BEFORE_STOP
refusals stops it until a /setup of the project or a restart; /jobs and the
log say so.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from ..errors import LabelStudioError
from ..label_studio.client import LabelStudioClient
from ..label_studio.storage import LabelStudio
from ..metrics import JOB_WRITES
from .store import WRITES_STOPPED, Claimed, JobStore

log = logging.getLogger("ocr_backend.jobs.runner")

WRITE_RETRY_S = 60.0  # the first wait after a failed write; doubled each time
MAX_RETRY_S = 3600.0  # never waits longer
# Refusals of one project's writes in a row before its writing stops. With the waits above
# that is 1 + 2 + 4 + 8 minutes of trying: a revoked token that comes back is seen, one
# that does not costs five requests, not one per task per minute.
REFUSALS_BEFORE_STOP = 5
# Failures after which Label Studio may hold the prediction: the request went out.
UNKNOWN_OUTCOME = ("timeout", "cut", "internal")


def refused(reason: str) -> bool:
    """Label Studio said no, or cannot be asked: trying again soon changes nothing."""
    return reason in ("refused", "no_token", "no_host") or (
        reason.startswith("http_4") and reason not in ("http_404", "http_408", "http_429")
    )


def same_data(left: Any, right: Any) -> bool:
    return json.dumps(left, sort_keys=True, default=str) == json.dumps(
        right, sort_keys=True, default=str
    )


class WriteBack:
    """Writes claimed results, one at a time, for the runner's write loop."""

    def __init__(
        self,
        store: JobStore,
        connect: Callable[[str, str | None], LabelStudio],
        http: httpx.AsyncClient,
    ) -> None:
        self.store = store
        self.connect = connect
        self.http = http
        self._held: dict[str, float] = {}  # in this batch, project: no write before
        self._logged: dict[str, str] = {}  # per project, the last warning logged

    async def write_all(self, claims: list[Claimed]) -> None:
        """Write a batch claimed together; a project refused once is not asked again in it."""
        self._held = {}
        for claimed in claims:
            held = self._held.get(claimed.project)
            if held is None:
                await self.write(claimed)
                continue
            await self.store.run(  # given back unasked: no attempt counted
                self.store.write_failed,
                claimed.key,
                "held back: Label Studio refused a write of this project",
                max(0.0, held - time.time()),
                unsure=claimed.unsure,
                attempt=False,
            )

    async def write(self, claimed: Claimed) -> None:
        """Write one claimed result, or give it back to be tried again later."""
        posting = False
        try:
            label_studio = self.connect(claimed.project, claimed.ls_host)
            if label_studio.host is None:
                raise LabelStudioError(
                    "no Label Studio host is known to write predictions to: set "
                    "LABEL_STUDIO_HOST and LABEL_STUDIO_ACCESS_TOKEN",
                    reason="no_host",
                )
            client = LabelStudioClient(self.http, label_studio.host, label_studio.auth)
            verdict = await self._check(client, claimed)
            if verdict is None:
                posting = True
                await client.create_prediction(
                    claimed.task_id or 0,
                    claimed.result or [],
                    claimed.score or 0.0,
                    claimed.model_version,
                )
                verdict = "written"
        except LabelStudioError as exc:
            await self._failed(claimed, exc, unsure=posting)
            return
        except Exception:
            log.exception("job %s: writing task %s failed", claimed.project, claimed.task_id)
            error = LabelStudioError("an unexpected error", reason="internal")
            await self._failed(claimed, error, unsure=posting)
            return
        JOB_WRITES.labels(verdict).inc()
        self._logged.pop(claimed.project, None)
        if verdict in ("written", "found"):
            if verdict == "found":
                log.info(
                    "job %s: task %s already has this model version's prediction in Label "
                    "Studio: not written again",
                    claimed.project,
                    claimed.task_id,
                )
            await self.store.run(self.store.written, claimed.key)

    async def _check(self, client: LabelStudioClient, claimed: Claimed) -> str | None:
        """Why not to write (a word for the metrics), or None: write it."""
        assert claimed.task_id is not None
        task = await client.task(claimed.task_id)
        if task is None or task.get("project") != claimed.ls_project:
            where = "no longer in" if task is None else "not in project"
            message = (
                f"task {claimed.task_id} is {where} {claimed.ls_project} in Label Studio at "
                f"{client.host}: its result is not written"
            )
            log.warning("job %s: %s", claimed.project, message)
            await self.store.run(
                self.store.write_failed,
                claimed.key,
                message,
                WRITES_STOPPED - time.time(),
                unsure=False,
            )
            return "not_in_project"
        if claimed.model_version in await client.prediction_versions(claimed.task_id):
            return "found"
        if not same_data(task.get("data"), claimed.task.get("data")):
            log.warning(
                "job %s: task %s was read from data Label Studio does not hold (request %s); "
                "read again from Label Studio's own data",
                claimed.project,
                claimed.task_id,
                claimed.asked_by,
            )
            await self.store.run(
                self.store.read_again, claimed.key, {**claimed.task, "data": task.get("data")}
            )
            return "read_again"
        return None

    async def _failed(self, claimed: Claimed, exc: LabelStudioError, *, unsure: bool) -> None:
        """Try again later, each wait twice the last; refused too often: stop."""
        JOB_WRITES.labels(exc.reason).inc()
        unsure = unsure and (exc.reason in UNKNOWN_OUTCOME or exc.reason.startswith("http_5"))
        unsure = unsure or claimed.unsure  # a failed check decides nothing
        attempts = claimed.write_attempts
        if refused(exc.reason):  # the project's count: a result read later starts there
            attempts = max(attempts, await self.store.run(self.store.refusals, claimed.project))
        attempts += 1
        wait = min(WRITE_RETRY_S * 2 ** (attempts - 1), MAX_RETRY_S)
        message = str(exc) + (
            "; Label Studio may hold it already, so it is checked before it is written again"
            if unsure
            else ""
        )
        if refused(exc.reason) and attempts >= REFUSALS_BEFORE_STOP:
            message = (
                f"writing stopped after {attempts} refused writes: {exc}; send /setup again "
                "(open the project's settings in Label Studio) or restart the service to "
                "try again"
            )
            wait = WRITES_STOPPED - time.time()
        if refused(exc.reason):
            self._held[claimed.project] = time.time() + wait
            await self.store.run(
                self.store.hold_writes, claimed.project, time.time() + wait, message
            )
        await self.store.run(
            self.store.write_failed,
            claimed.key,
            message,
            wait,
            unsure=unsure,
            attempts=attempts,
        )
        if self._logged.get(claimed.project) != message:  # once per change, not per task
            self._logged[claimed.project] = message
            log.warning(
                "job %s: results not written to Label Studio, kept for the next answer "
                "that asks for them (see GET /jobs): %s%s",
                claimed.project,
                message,
                "" if wait >= WRITES_STOPPED - time.time() - 1 else f"; next try in {wait:.3g} s",
            )
