"""The routes Label Studio calls, and the service's own. Thin: the work is elsewhere."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Response

from .. import __version__, metrics
from ..errors import LabelConfigError
from ..label_studio.config import OcrTargets, parse_label_config
from ..label_studio.projects import ProjectSetup
from ..label_studio.schemas import (
    ErrorResponse,
    PredictResponse,
    SetupRequest,
    SetupResponse,
    VersionsResponse,
    WebhookRequest,
    WebhookResponse,
)
from ..predictor import PredictContext, images_to_read
from ..settings import Settings
from .deps import (
    EngineDep,
    LabelStudioDep,
    PredictorDep,
    PredictRequestDep,
    ProjectsDep,
    ProjectSetupDep,
    QueueDep,
    RequestContextDep,
    SettingsDep,
)
from .examples import PREDICT_RESPONSE_EXAMPLE, SETUP_EXAMPLES, WEBHOOK_EXAMPLES

router = APIRouter()

# /predict's 422: FastAPI's list of field errors, or one sentence about the label config.
UNPROCESSABLE: dict[str, Any] = {
    "description": "The body is not a predict request, or its label config cannot be served",
    "content": {
        "application/json": {
            "schema": {
                "anyOf": [
                    {"$ref": "#/components/schemas/HTTPValidationError"},
                    {"$ref": "#/components/schemas/ErrorResponse"},
                ]
            }
        }
    },
}


def targets_for(config: str, settings: Settings) -> OcrTargets:
    return parse_label_config(config, settings.label_mappings)


@router.get("/", summary="Service information")
async def index() -> dict[str, Any]:
    return {"name": "ocr-backend", "version": __version__, "health": "/health", "docs": "/docs"}


@router.get("/health", summary="Liveness for Label Studio (1 s timeout on its side)")
async def health(engine: EngineDep, predictor: PredictorDep) -> dict[str, Any]:
    # Never waits on the engine: Label Studio gives this call one second.
    return {
        "status": "UP",
        "model_class": "EasyOCR",
        "device": engine.device,
        "languages": list(engine.languages),
        "model_version": predictor.model_version,
    }


@router.get(
    "/metrics",
    summary="Prometheus metrics, summed over all worker processes",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def prometheus_metrics() -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


@router.post(
    "/setup",
    summary="Label Studio connects a project",
    response_model=SetupResponse,
    responses={400: {"model": ErrorResponse, "description": "A config it cannot serve"}},
)
async def setup(
    body: Annotated[SetupRequest, Body(openapi_examples=SETUP_EXAMPLES)],
    settings: SettingsDep,
    projects: ProjectsDep,
    predictor: PredictorDep,
) -> SetupResponse:
    """Check that the project's label config can be served; answer the model version."""
    # Label Studio gives /setup 3 s: parse the config, never load anything.
    try:
        targets_for(body.label_config, settings)
    except LabelConfigError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    projects.save(body.project, ProjectSetup(body.label_config, body.hostname, body.access_token))
    return SetupResponse(model_version=predictor.model_version)


@router.post(
    "/predict",
    summary="Pre-annotate tasks: one prediction per task, in task order",
    response_model=PredictResponse,
    response_model_exclude_none=True,
    responses={
        200: {"content": {"application/json": {"example": PREDICT_RESPONSE_EXAMPLE}}},
        400: {"model": ErrorResponse, "description": "The body is not UTF-8 text"},
        422: UNPROCESSABLE,
        413: {"model": ErrorResponse, "description": "More tasks than MAX_QUEUE"},
        503: {"model": ErrorResponse, "description": "The OCR queue is full; retry later"},
    },
)
async def predict(
    body: PredictRequestDep,
    stored: ProjectSetupDep,
    label_studio: LabelStudioDep,
    settings: SettingsDep,
    predictor: PredictorDep,
    queue: QueueDep,
    log_context: RequestContextDep,
) -> PredictResponse:
    """Read every line of text in each task's image: one region per line.

    A task whose image cannot be fetched or decoded gets an empty result and
    an `error`; the other tasks are not affected.
    """
    log_context.tasks = len(body.tasks)
    config = body.label_config or (stored.label_config if stored else None)
    if not config:
        raise HTTPException(
            status_code=422,
            detail="label_config is missing and /setup was not called for project "
            f"{body.project!r}: send the project's label config XML in label_config",
        )
    try:
        targets = targets_for(config, settings)
    except LabelConfigError as exc:
        raise HTTPException(status_code=422, detail=f"label_config: {exc}") from None
    context = PredictContext(
        label_studio=label_studio,
        interactive=body.params.context if body.params else None,
        request_id=log_context.id,
    )
    # Every page of a multi-page task is one image in the queue, as a task's image is.
    images = images_to_read(body.tasks, targets)
    with queue.admit(images, pages=targets.multi_page):  # QueueFull, TooManyTasks: handlers.py
        results = await predictor.predict(body.tasks, targets, context)
    log_context.failed = sum(1 for result in results if result.error)
    return PredictResponse(results=results)


@router.post(
    "/webhook",
    summary="Annotation events and training requests",
    response_model=WebhookResponse,
    responses={400: {"model": ErrorResponse, "description": "The body is not UTF-8 text"}},
)
async def webhook(
    body: Annotated[WebhookRequest, Body(openapi_examples=WEBHOOK_EXAMPLES)],
) -> WebhookResponse:
    return WebhookResponse(
        status="ok", detail="EasyOCR is not trained by this backend; the event was ignored"
    )


@router.get(
    "/versions", summary="Model versions this backend serves", response_model=VersionsResponse
)
async def versions(predictor: PredictorDep) -> VersionsResponse:
    return VersionsResponse(versions=[predictor.model_version])
