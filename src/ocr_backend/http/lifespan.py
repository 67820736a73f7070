"""What the service holds while it serves, built once at start-up and typed.

The lifespan yields it as Starlette's lifespan state, so each request sees
it as `request.state.services`; routes get its parts through `deps.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import anyio.to_thread
from fastapi import FastAPI

from .. import metrics
from ..engine import Engine, load_engine
from ..images.fetch import new_http_client
from ..label_studio.projects import STORE_DIR, ProjectStore
from ..label_studio.storage import LabelStudioImageFetcher
from ..predictor import Predictor
from ..settings import Settings
from .admission import AdmissionQueue

STATE_KEY = "services"


@dataclass(frozen=True)
class Services:
    """Everything a route may need, for the life of the app."""

    settings: Settings
    engine: Engine
    predictor: Predictor
    fetcher: LabelStudioImageFetcher
    queue: AdmissionQueue
    projects: ProjectStore


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
            services = Services(
                settings=settings,
                engine=ocr,
                predictor=Predictor(ocr, fetcher, settings),
                fetcher=fetcher,
                queue=AdmissionQueue(
                    settings.max_queue,
                    seconds_per_image=lambda: ocr.seconds_per_image,
                    threads=ocr.threads,
                ),
                # What /setup sent, per project, where every worker process sees it.
                projects=ProjectStore(
                    settings.model_dir / STORE_DIR, max_projects=settings.max_projects
                ),
            )
            try:
                yield {STATE_KEY: services}
            finally:
                metrics.forget_this_process()
                if owned:
                    ocr.close()

    return lifespan
