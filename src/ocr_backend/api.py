"""The app factory: wiring only. Routes are in http/routes.py, what they need in http/deps.py."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from . import __version__
from .engine import Engine
from .http import handlers, jobs
from .http.auth import BasicAuthMiddleware
from .http.lifespan import lifespan_for
from .http.limits import BodySizeLimit
from .http.observe import ObservabilityMiddleware
from .http.predict_body import document_predict_request
from .http.routes import router
from .logs import configure_logging
from .settings import Settings

API_DESCRIPTION = """
Connect this service from Label Studio (*Project → Settings → Model*) to get
OCR pre-annotations: one region per line of text, with its box or polygon,
its label and the text read.

Try **POST /predict** below: its example carries Label Studio's stock OCR
template and an inline image of the word HELLO.
"""


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """Build the service. With no engine given, the lifespan loads one before serving."""
    # The docs page's JavaScript and CSS are served from here, not a CDN: it works offline.
    app = FastAPIOffline(
        title="ocr-backend",
        version=__version__,
        summary="Label Studio ML backend: OCR pre-annotations with EasyOCR",
        description=API_DESCRIPTION,
        lifespan=lifespan_for(settings, engine),
    )
    app.include_router(router)
    app.include_router(jobs.router)
    # Innermost of the three: a request without credentials is refused before its body.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    if settings.basic_auth_user is not None and settings.basic_auth_pass is not None:
        app.add_middleware(
            BasicAuthMiddleware,
            username=settings.basic_auth_user,
            password=settings.basic_auth_pass.get_secret_value(),
        )
    # Outermost: 401s get a request id and a log line too.
    app.add_middleware(ObservabilityMiddleware)
    handlers.install(app)
    # /predict's body is read by the service itself; its models join the docs here.
    schema = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_predict_request(schema())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn's worker processes (WORKERS > 1): each reads the environment."""
    settings = Settings()
    configure_logging(settings.log_level)  # a worker process starts with no log handler
    return create_app(settings)
