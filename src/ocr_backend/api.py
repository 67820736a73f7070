"""The HTTP face of the service: app factory, lifespan and routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request

from . import __version__
from .engine import OcrEngine
from .settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings, engine: OcrEngine | None = None) -> FastAPI:
    """Build the service. With no engine given, the lifespan loads one before serving."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = engine is None
        # Loading takes seconds: off the event loop, and done before the port serves.
        app.state.engine = engine or await anyio.to_thread.run_sync(OcrEngine.load, settings)
        try:
            yield
        finally:
            if owned:
                app.state.engine.close()

    app = FastAPI(
        title="ocr-backend",
        version=__version__,
        summary="Label Studio ML backend: OCR pre-annotations with EasyOCR",
        lifespan=lifespan,
    )
    app.state.settings = settings

    @app.get("/", summary="Service information")
    async def index(request: Request) -> dict[str, Any]:
        return {"name": "ocr-backend", "version": __version__, "health": "/health", "docs": "/docs"}

    @app.get("/health", summary="Liveness for Label Studio (1 s timeout on its side)")
    async def health(request: Request) -> dict[str, Any]:
        # Never waits on the engine: Label Studio gives this call one second.
        ocr: OcrEngine = request.app.state.engine
        return {
            "status": "UP",
            "model_class": "EasyOCR",
            "device": ocr.device,
            "languages": list(ocr.languages),
        }

    return app


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn's worker processes (WORKERS > 1): each reads the environment."""
    return create_app(Settings())
