"""What the service holds while it serves, built once at start-up and typed.

The lifespan yields it as Starlette's lifespan state, so each request sees
it as `request.state.services`; routes get its parts through `deps.py`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from fastapi import FastAPI

from .. import metrics
from ..engine import Engine, load_engine
from ..images.fetch import new_http_client
from ..jobs.answers import QueuedPredictions
from ..jobs.runner import JobRunner
from ..jobs.store import JOBS_DIR, NO_PROJECT, JobStore, job_scope
from ..label_studio.projects import STORE_DIR, ProjectStore
from ..label_studio.storage import LabelStudio, LabelStudioImageFetcher
from ..predictor import PredictContext, Predictor
from ..settings import Settings
from ..training.trainer import Trainer
from .admission import AdmissionQueue

log = logging.getLogger(__name__)

STATE_KEY = "services"


@dataclass(frozen=True)
class Services:
    """Everything a route may need, for the life of the app."""

    settings: Settings
    engine: Engine
    predictor: Predictor
    fetcher: LabelStudioImageFetcher
    admission: AdmissionQueue  # images in hand now, against MAX_QUEUE
    projects: ProjectStore
    job_store: JobStore
    queued: QueuedPredictions  # /predict through the job queue on disk
    trainer: Trainer


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[dict[str, Services]]]


def lifespan_for(settings: Settings, engine: Engine | None) -> Lifespan:
    """The app's lifespan: load the engine unless one is given, and hold its services."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Services]]:
        owned = engine is None
        # Loading takes seconds: off the event loop, and done before the port serves.
        ocr = (
            engine if engine is not None else await anyio.to_thread.run_sync(load_engine, settings)
        )
        client = new_http_client(
            settings.fetch_timeout, allow_private=settings.allow_private_networks
        )
        async with client:
            fetcher = LabelStudioImageFetcher(
                client, max_bytes=settings.max_image_bytes, settings=settings
            )
            # What /setup sent, per project, where every worker process sees it.
            projects = ProjectStore(
                settings.model_dir / STORE_DIR, max_projects=settings.max_projects
            )

            def connect(project: str, host: str | None) -> LabelStudio:
                """A queued task's Label Studio: the host it was queued for."""
                setup = projects.load(None if project == NO_PROJECT else project)
                return fetcher.connect_to(host, setup)

            predictor = Predictor(ocr, fetcher, settings)
            trainer = Trainer(settings)
            predictor.project_models = trainer.model_for
            # Shared by every worker (and `annotate`) of this Label Studio; another
            # service on the same MODEL_DIR never claims these rows (jobs/store.py).
            job_store = JobStore(settings.model_dir / JOBS_DIR, scope=job_scope(settings))
            runner = JobRunner(
                job_store,
                predictor,
                connect,
                client,
                capacity=predictor.images_in_hand,
                known_project=lambda project: projects.known(None if project == "-" else project),
            )
            services = Services(
                settings=settings,
                engine=ocr,
                predictor=predictor,
                fetcher=fetcher,
                admission=AdmissionQueue(
                    settings.max_queue,
                    seconds_per_image=lambda: ocr.seconds_per_image,
                    threads=ocr.threads,
                ),
                projects=projects,
                job_store=job_store,
                queued=QueuedPredictions(
                    job_store,
                    runner,
                    predictor.model_version,
                    lambda project: predictor.version_for(PredictContext(project=project)),
                ),
                trainer=trainer,
            )
            await runner.start()
            # A training stopped by the last shutdown starts again (training/trainer.py).
            trainer.resume()
            # What start-up made (modules, the OCR models: about 400,000 objects) lives as
            # long as the process: frozen, Python's cycle collector stops walking it at
            # each full pass, which holds the GIL and so the event loop. During a /predict
            # of 500,000 tasks, /health's worst wait went from 0.57-0.71 s to 0.25-0.35 s
            # (three runs each).
            gc.freeze()
            try:
                with stop_signals_tell(runner.request_stop):
                    yield {STATE_KEY: services}
            finally:
                # Images in flight finish; what is still queued stays on disk for next time.
                await runner.stop()
                await services.queued.close()  # tasks not queued yet: Label Studio asks again
                await trainer.close()
                job_store.close()
                metrics.forget_this_process()
                gc.unfreeze()  # collectable again, as before (several apps in one process)
                if owned:
                    ocr.close()

    return lifespan


@contextmanager
def stop_signals_tell(stop: Callable[[], None]) -> Iterator[None]:
    """On SIGTERM or SIGINT, call `stop` too, before uvicorn's own handler.

    uvicorn waits for requests in flight before the lifespan ends; a /predict
    waiting for its deadline then answers at once with what is read, and the
    background reader claims nothing more. uvicorn restores its own handlers
    when it stops; here they are restored when the app stops, if still ours.
    """
    loop = asyncio.get_running_loop()
    installed: dict[signal.Signals, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)

        def handler(number: int, frame: Any, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(stop)
            if callable(previous):
                previous(number, frame)

        try:
            signal.signal(signum, handler)
        except ValueError:  # not the main thread (a test client): no signals to hear
            continue
        installed[signum] = previous
    try:
        yield
    finally:
        for signum, previous in installed.items():
            try:
                signal.signal(signum, previous)
            except (ValueError, TypeError):
                log.debug("could not restore the handler of %s", signum)
