"""`ocr-backend annotate`'s place in the service's queue: it claims each task before reading it.

`annotate` reads and writes in its own process, while the service may be
reading the same project's tasks for a "Retrieve predictions". Both use the
queue file under MODEL_DIR and the same key for one Label Studio task
(`task_key`), so whoever claims a task first delivers it and the other leaves
it alone: annotate skips a task the service has queued, is reading, or has
read and not delivered, and the service answers "delivered" for one annotate
is reading. Before writing, the write-back checks Label Studio for this model
version's prediction too (jobs/write_back.py), which covers a service with
its own MODEL_DIR or Label Studio host spelling.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from types import TracebackType
from typing import Any

import httpx

from ..label_studio.schemas import Task
from ..label_studio.storage import LabelStudioImageFetcher
from ..settings import Settings
from .answers import task_key
from .store import JOBS_DIR, Entry, JobStore, job_scope
from .write_back import WriteBack

HEARTBEAT_S = 5.0  # the service's recovery takes an owner silent for a minute as gone


class DirectJobs:
    """Claims, reads and writes of one project's tasks by a process of its own."""

    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        fetcher: LabelStudioImageFetcher,
        *,
        project: int,
        model_version: str,
        label_config: str,
    ) -> None:
        self.store = JobStore(settings.model_dir / JOBS_DIR, scope=job_scope(settings))
        self.host = fetcher.connect(None).host
        self.writer = WriteBack(self.store, lambda _project, _host: fetcher.connect(None), http)
        self.project = project
        self.model_version = model_version
        self.label_config = label_config
        self.digest = hashlib.sha256(label_config.encode()).hexdigest()
        self.listed_at = time.time()  # when Label Studio said which tasks lack a prediction
        self._alive: asyncio.Task[None] | None = None

    async def __aenter__(self) -> DirectJobs:
        await self.store.run(self.store.heartbeat)
        self._alive = asyncio.create_task(self._keep_alive())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._alive is not None:
            self._alive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._alive
        await asyncio.to_thread(self.store.close)

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            with contextlib.suppress(Exception):
                await self.store.run(self.store.heartbeat)

    async def claim(self, task: Task) -> str | None:
        """The task's key if this process reads it now; None: someone else has it."""
        key = task_key(
            str(self.project),
            task,
            self.model_version,
            ls_project=self.project,
            ls_host=self.host,
        )
        entry = Entry(
            key=key,
            project=str(self.project),
            ls_project=self.project,
            task_id=task.id,
            model_version=self.model_version,
            config_digest=self.digest,
            task=task.model_dump(mode="json"),
            asked_by=f"annotate:{self.project}",
            ls_host=self.host,
        )
        mine = await self.store.run(
            self.store.claim_direct, entry, self.label_config, self.listed_at
        )
        return key if mine else None

    async def deliver(self, key: str, result: list[dict[str, Any]], score: float) -> str | None:
        """Write a result read here; None when Label Studio holds it, else why not."""
        claimed = await self.store.run(self.store.finish_to_write, key, result, score)
        if claimed is None:
            return "its claim was taken over (this process was silent for a minute)"
        await asyncio.shield(self.writer.write(claimed))
        delivery, error = await self.store.run(self.store.delivery_of, key)
        return None if delivery == "written" else (error or "not written")

    async def failed(self, key: str, reason: str, error: str) -> None:
        await self.store.run(self.store.fail, key, reason, error)

    async def put_back(self, key: str) -> None:
        await self.store.run(self.store.put_back, key)
