"""The background runner: reads queued tasks and writes what no answer took to Label Studio.

One per process. It claims tasks from the queue on disk (people's first),
reads them through the predictor (whose gate lets people's requests ahead of
bulk work at the engine), and writes every result that no /predict answer
took in time through Label Studio's API, under the same model version.

On stop (SIGTERM), nothing new is claimed, the images being read finish and
are kept, and the rest stays queued on disk for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from ..errors import LabelConfigError, TaskError
from ..label_studio.config import OcrTargets, parse_label_config
from ..label_studio.schemas import Task
from ..label_studio.storage import LabelStudio
from ..metrics import JOB_READS
from ..predictor import PredictContext, Predictor
from .progress import job_progress, log_progress, publish_progress
from .store import NO_PROJECT, Claimed, JobStore
from .write_back import WriteBack

log = logging.getLogger(__name__)

POLL_S = 0.5  # how often to look for work other processes queued
HEARTBEAT_S = 5.0
PROGRESS_S = 10.0  # a log line per active job this often
WRITE_BATCH = 16
STOP_GRACE_S = 25.0  # within uvicorn's 30 s graceful shutdown
# Rows delivered or failed longer ago are dropped: as long as /jobs shows a finished job.
KEEP_DELIVERED_S = 24 * 3600.0
STORE_RETRY_S = 0.5  # the first wait before storing a read's outcome again
MAX_STORE_RETRY_S = 30.0
PRUNE_S = 600.0  # how often: 40 requests a second apart can be many rows


T = TypeVar("T")


async def read_bounded(
    claim: Callable[[], Awaitable[T | None]],
    start: Callable[[T], asyncio.Task[None]],
    *,
    capacity: int,
    stopping: asyncio.Event,
    idle: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Claim work and start reading it, at most `capacity` reads under way, until `stopping`.

    `claim` gives the next piece of work, or None when there is none now:
    `idle` then waits for more (without it there is no more, and the loop
    ends). `start` starts reading one piece and hands back its task; the
    reads started go on after the loop ends, for the caller to finish or put back.
    """
    places = asyncio.Semaphore(capacity)
    while not stopping.is_set():
        await places.acquire()
        if stopping.is_set():
            places.release()
            return
        claimed = await claim()
        if claimed is None:
            places.release()
            if idle is None:
                return
            await idle()
            continue
        start(claimed).add_done_callback(lambda _: places.release())


class Changed:
    """Wakes whoever waits when a task's state changes in this process."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, at_most: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), at_most)


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        predictor: Predictor,
        connect: Callable[[str, str | None], LabelStudio],
        http: httpx.AsyncClient,
        *,
        capacity: int,
        known_project: Callable[[str], bool] = lambda project: True,
    ) -> None:
        self.store = store
        self.known_project = known_project  # /setup knows it: listed before invented ones
        self.predictor = predictor
        self.connect = connect
        self.http = http
        self.capacity = capacity
        self.changed = Changed()  # a task was read or failed: answers waiting look again
        self.work = Changed()  # a task was queued, or a result wants writing
        self.stopping = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        # Reads under way, each with whether the engine has started on it.
        self._reads: dict[asyncio.Task[None], asyncio.Event] = {}
        self.writer = WriteBack(store, connect, http)

    async def start(self) -> None:
        await self.store.run(self.store.heartbeat)
        reads, writes = await self.store.run(self.store.recover)
        # A start tries again what Label Studio refused before (a new token, say).
        await self.store.run(self.store.resume_writes, None)
        if reads or writes:
            log.info(
                "resuming jobs left by a stopped process: %d task(s) queued again, "
                "%d write(s) to check",
                reads,
                writes,
            )
        self._loops = [
            asyncio.create_task(self._read_loop(most_urgent_only=True), name="jobs-people"),
            asyncio.create_task(self._read_loop(most_urgent_only=False), name="jobs-bulk"),
            asyncio.create_task(self._write_loop(), name="jobs-write"),
            asyncio.create_task(self._keep_alive(), name="jobs-heartbeat"),
        ]

    def request_stop(self) -> None:
        """Claim nothing more; answers waiting return what they have."""
        self.stopping.set()
        self.changed.notify()
        self.work.notify()

    async def stop(self) -> None:
        """Finish the images in flight (up to STOP_GRACE_S), keep the rest queued."""
        self.request_stop()
        waiting = [read for read, at_engine in self._reads.items() if not at_engine.is_set()]
        log.info(
            "stopping: %d image(s) being read finish, %d claimed task(s) go back to the queue",
            len(self._reads) - len(waiting),
            len(waiting),
        )
        for read in waiting:  # not at the engine yet: back to the queue, for the next start
            read.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        if self._reads:
            _, pending = await asyncio.wait(set(self._reads), timeout=STOP_GRACE_S)
            for read in pending:
                read.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self.store.run(self.store.heartbeat)

    # -- reading ------------------------------------------------------------------------

    async def _read_loop(self, *, most_urgent_only: bool) -> None:
        async def claim() -> Claimed | None:
            try:
                return await self.store.run(self.store.claim_next, most_urgent_only)
            except Exception:
                log.exception("cannot claim work from the job queue %s", self.store.path)
                return None

        await read_bounded(
            claim,
            self._start_read,
            capacity=self.capacity,
            stopping=self.stopping,
            idle=lambda: self.work.wait(POLL_S),
        )

    def _start_read(self, claimed: Claimed) -> asyncio.Task[None]:
        at_engine = asyncio.Event()
        read = asyncio.create_task(self._read(claimed, at_engine))
        self._reads[read] = at_engine
        read.add_done_callback(lambda done: self._reads.pop(done, None))
        return read

    async def _read(self, claimed: Claimed, at_engine: asyncio.Event) -> None:
        try:
            await self._read_claimed(claimed, at_engine)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s: reading task %s failed", claimed.project, claimed.task_id)

    async def _stored(self, claimed: Claimed, call: Callable[..., object], *args: Any) -> None:
        """Store a read's outcome; when that fails (the disk full, the file locked too long)
        try again, each wait twice the last, until it is stored or the service stops.

        Given up on, the row stayed `reading` under this process until a restart, and every
        later ask answered "pending" (2 of 2 still stuck 90 s after space returned). The
        read keeps its place meanwhile, so nothing more is claimed while the disk is full.
        """
        wait = STORE_RETRY_S
        while True:
            try:
                await self.store.run(call, *args)
                return
            except Exception as exc:
                if self.stopping.is_set():  # left `reading`: recovered at the next start
                    raise
                log.warning(
                    "job %s: the outcome of task %s could not be stored (%s); trying again "
                    "in %.1f s",
                    claimed.project,
                    claimed.task_id,
                    exc,
                    wait,
                )
            await asyncio.sleep(wait)
            wait = min(wait * 2, MAX_STORE_RETRY_S)

    async def _read_claimed(self, claimed: Claimed, at_engine: asyncio.Event) -> None:
        task = Task.model_validate(claimed.task)
        context = PredictContext(
            label_studio=self.connect(claimed.project, claimed.ls_host),
            request_id=claimed.asked_by,
            project=None if claimed.project == NO_PROJECT else claimed.project,
        )
        try:
            targets = self._targets_for(claimed.label_config)
            prediction = await self.predictor.read_page(
                task, targets, context, claimed.priority, at_engine
            )
        except asyncio.CancelledError:
            await asyncio.shield(self.store.run(self.store.put_back, claimed.key))
            raise
        except Exception as exc:
            # A TaskError says what the user can do; anything else is a bug, which
            # `failed` logs with its traceback. Either way the neighbours go on.
            failed = self.predictor.failed(task, exc, context)
            JOB_READS.labels("failed").inc()
            await self._stored(claimed, self.store.fail, claimed.key, failed.reason, failed.error)
        else:
            JOB_READS.labels("read").inc()
            await self._stored(
                claimed, self.store.finish, claimed.key, prediction.result, prediction.score
            )
            self.work.notify()
        self.changed.notify()

    def _targets_for(self, label_config: str) -> OcrTargets:
        try:
            return parse_label_config(label_config, self.predictor.settings.label_mappings)
        except LabelConfigError as exc:
            raise TaskError(f"label config: {exc}", reason="label_config") from None

    # -- writing ------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                claims = await self.store.run(self.store.claim_writes, WRITE_BATCH)
            except Exception:
                log.exception("cannot claim writes from the job queue %s", self.store.path)
                claims = []
            if not claims:
                await self.work.wait(1.0)
                continue
            # A claimed write is always finished or given back, also while stopping.
            await asyncio.shield(self.writer.write_all(claims))

    # -- staying alive ------------------------------------------------------------------

    async def _keep_alive(self) -> None:
        last_progress = 0.0
        last_recover = time.monotonic()
        last_prune = 0.0
        while not self.stopping.is_set():
            try:
                await self.store.run(self.store.heartbeat)
                if time.monotonic() - last_recover > 30:
                    last_recover = time.monotonic()
                    reads, _ = await self.store.run(self.store.recover)
                    if reads:
                        self.work.notify()
                if time.monotonic() - last_prune > PRUNE_S:
                    last_prune = time.monotonic()
                    await self.store.run(
                        self.store.forget_delivered,
                        KEEP_DELIVERED_S,
                        self.predictor.settings.max_projects,
                    )
                progress = await self.store.run(job_progress, self.store, self.known_project)
                publish_progress(progress)
                if time.monotonic() - last_progress > PROGRESS_S:
                    last_progress = time.monotonic()
                    log_progress(progress)
            except Exception:
                log.exception("job queue upkeep failed (%s)", self.store.path)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), HEARTBEAT_S)
