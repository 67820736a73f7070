"""The HTTP face of the service: app factory, lifespan and routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Body, FastAPI, HTTPException, Request
from fastapi_offline import FastAPIOffline

from . import __version__
from .auth import BasicAuthMiddleware
from .engine import OcrEngine
from .examples import (
    PREDICT_EXAMPLES,
    PREDICT_RESPONSE_EXAMPLE,
    SETUP_EXAMPLES,
    WEBHOOK_EXAMPLES,
)
from .images import new_http_client
from .label_studio import LabelStudioImageFetcher
from .labeling import LabelConfigError, OcrTargets, parse_label_config
from .predictor import Predictor, model_version
from .projects import STORE_DIR, ProjectSetup, ProjectStore
from .schemas import (
    PredictRequest,
    PredictResponse,
    SetupRequest,
    SetupResponse,
    VersionsResponse,
    WebhookRequest,
    WebhookResponse,
)
from .settings import Settings

log = logging.getLogger(__name__)


API_DESCRIPTION = """
Connect this service from Label Studio (*Project → Settings → Model*) to get
OCR pre-annotations: one region per line of text, with its box or polygon,
its label and the text read.

Try **POST /predict** below: its example carries Label Studio's stock OCR
template and an inline image of the word HELLO.
"""


def create_app(settings: Settings, engine: OcrEngine | None = None) -> FastAPI:
    """Build the service. With no engine given, the lifespan loads one before serving."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = engine is None
        # Loading takes seconds: off the event loop, and done before the port serves.
        ocr = engine or await anyio.to_thread.run_sync(OcrEngine.load, settings)
        async with new_http_client(settings.fetch_timeout) as client:
            fetcher = LabelStudioImageFetcher(
                client, max_bytes=settings.max_image_bytes, settings=settings
            )
            app.state.engine = ocr
            app.state.label_studio_images = fetcher
            app.state.predictor = Predictor(ocr, fetcher, settings)
            try:
                yield
            finally:
                if owned:
                    ocr.close()

    # The docs page's JavaScript and CSS are served from here, not a CDN: it works offline.
    app = FastAPIOffline(
        title="ocr-backend",
        version=__version__,
        summary="Label Studio ML backend: OCR pre-annotations with EasyOCR",
        description=API_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    # What /setup sent, per project, where every worker process sees it (WORKERS > 1).
    app.state.projects = ProjectStore(settings.model_dir / STORE_DIR)
    version = model_version(settings)
    if settings.auth_enabled:
        assert settings.basic_auth_user is not None and settings.basic_auth_pass is not None
        app.add_middleware(
            BasicAuthMiddleware,
            username=settings.basic_auth_user,
            password=settings.basic_auth_pass.get_secret_value(),
        )

    def targets_for(config: str) -> OcrTargets:
        return parse_label_config(config, settings.label_mappings)

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
            "model_version": version,
        }

    @app.post("/setup", summary="Label Studio connects a project", response_model=SetupResponse)
    async def setup(
        body: Annotated[SetupRequest, Body(openapi_examples=SETUP_EXAMPLES)], request: Request
    ) -> SetupResponse:
        """Check that the project's label config can be served; answer the model version."""
        # Label Studio gives /setup 3 s: parse the config, never load anything.
        try:
            targets_for(body.label_config)
        except LabelConfigError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        request.app.state.projects.save(
            body.project, ProjectSetup(body.label_config, body.hostname, body.access_token)
        )
        return SetupResponse(model_version=version)

    @app.post(
        "/predict",
        summary="Pre-annotate tasks: one prediction per task, in task order",
        response_model=PredictResponse,
        response_model_exclude_none=True,
        responses={200: {"content": {"application/json": {"example": PREDICT_RESPONSE_EXAMPLE}}}},
    )
    async def predict(
        body: Annotated[PredictRequest, Body(openapi_examples=PREDICT_EXAMPLES)], request: Request
    ) -> PredictResponse:
        """Read every line of text in each task's image: one region per line.

        A task whose image cannot be fetched or decoded gets an empty result and
        an `error`; the other tasks are not affected.
        """
        stored: ProjectSetup | None = request.app.state.projects.load(body.project)
        config = body.label_config or (stored.label_config if stored else None)
        if not config:
            raise HTTPException(
                status_code=422,
                detail="label_config is missing and /setup was not called for project "
                f"{body.project!r}: send the project's label config XML in label_config",
            )
        try:
            targets = targets_for(config)
        except LabelConfigError as exc:
            raise HTTPException(status_code=422, detail=f"label_config: {exc}") from None
        predictor: Predictor = request.app.state.predictor
        with request.app.state.label_studio_images.serving(stored):
            results = await predictor.predict(body.tasks, targets)
        return PredictResponse(results=results)

    @app.post(
        "/webhook",
        summary="Annotation events and training requests",
        response_model=WebhookResponse,
    )
    async def webhook(
        body: Annotated[WebhookRequest, Body(openapi_examples=WEBHOOK_EXAMPLES)],
    ) -> WebhookResponse:
        return WebhookResponse(
            status="ok", detail="EasyOCR is not trained by this backend; the event was ignored"
        )

    @app.get(
        "/versions", summary="Model versions this backend serves", response_model=VersionsResponse
    )
    async def versions() -> VersionsResponse:
        return VersionsResponse(versions=[version])

    return app


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn's worker processes (WORKERS > 1): each reads the environment."""
    return create_app(Settings())
