"""The routes Label Studio calls, and the service's own. Thin: the work is elsewhere."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Body, HTTPException, Response

from .. import __version__, metrics
from ..errors import LabelConfigError, LabelConfigTooLarge, TooManyRegions
from ..label_studio.config import OcrTargets, parse_label_config
from ..label_studio.projects import ProjectSetup
from ..label_studio.regions import drawn_regions
from ..label_studio.schemas import (
    ErrorResponse,
    NotPredicted,
    PredictResponse,
    SetupRequest,
    SetupResponse,
    TrainRequest,
    VersionsResponse,
    WebhookRequest,
    WebhookResponse,
)
from ..predictor import PredictContext, check_pages, images_to_read
from ..priority import Priority, priority_of
from ..settings import Settings
from ..training.trainer import Trainer, project_id
from .delivery import ConfirmedAnswer, render_results
from .deps import (
    AdmissionDep,
    EngineDep,
    JobStoreDep,
    LabelStudioDep,
    PredictorDep,
    PredictRequestDep,
    ProjectsDep,
    ProjectSetupDep,
    QueuedPredictionsDep,
    RequestContextDep,
    SettingsDep,
    TrainerDep,
)
from .examples import (
    PREDICT_EXAMPLES,
    PREDICT_RESPONSE_EXAMPLE,
    SETUP_EXAMPLES,
    WEBHOOK_EXAMPLES,
)
from .predict_body import predict_body_openapi

router = APIRouter()

# /predict's 422: FastAPI's list of field errors, or one sentence about the label config.
# Every route with a JSON body: the handler answers 400 when the body is not even text.
UNREADABLE: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "The body is not UTF-8 text"}
}

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


async def targets_for(config: str, settings: Settings) -> OcrTargets:
    """The config's OCR targets; refused over MAX_LABEL_CONFIG_BYTES, parsed off the event loop.

    Parsing a 13 MB config held the event loop (and /health, which Label Studio gives
    one second) for 4 s.
    """
    size = len(config.encode("utf-8", "surrogatepass"))
    if size > settings.max_label_config_bytes:
        raise LabelConfigTooLarge(size, settings.max_label_config_bytes)
    return await anyio.to_thread.run_sync(parse_label_config, config, settings.label_mappings)


@router.get("/", summary="Service information")
async def index() -> dict[str, Any]:
    return {"name": "ocr-backend", "version": __version__, "health": "/health", "docs": "/docs"}


@router.get("/health", summary="Liveness for Label Studio (1 s timeout on its side)")
async def health(engine: EngineDep, predictor: PredictorDep) -> dict[str, Any]:
    # Never waits on the engine: Label Studio gives this call one second. Label Studio
    # reads only the HTTP status: a Ray pool with capacity down stays "UP" (200) and
    # says "degraded"; its requests are answered by the actors left, or 503.
    return {
        "status": "UP",
        "model_class": engine.name,
        "device": engine.device,
        "languages": list(engine.languages),
        "model_version": predictor.model_version,
        **engine.health(),
    }


@router.get(
    "/metrics",
    summary="Prometheus metrics, summed over all worker processes",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def prometheus_metrics(trainer: TrainerDep) -> Response:
    trainer.trainings()  # the trainings' gauges, from their progress files
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


@router.post(
    "/setup",
    summary="Label Studio connects a project",
    response_model=SetupResponse,
    responses={
        400: {
            "model": ErrorResponse,
            "description": "A config it cannot serve, or a body that is not UTF-8 text",
        },
        413: {"model": ErrorResponse, "description": "A config over MAX_LABEL_CONFIG_BYTES"},
    },
)
async def setup(
    body: Annotated[SetupRequest, Body(openapi_examples=SETUP_EXAMPLES)],
    settings: SettingsDep,
    projects: ProjectsDep,
    predictor: PredictorDep,
    job_store: JobStoreDep,
    trainer: TrainerDep,
) -> SetupResponse:
    """Check that the project's label config can be served; answer the model version.

    Results whose writing Label Studio refused are tried again: a /setup may bring a
    new token.
    """
    # Label Studio gives /setup 3 s: parse the config, never load anything.
    try:
        await targets_for(body.label_config, settings)
    except LabelConfigError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    projects.save(body.project, ProjectSetup(body.label_config, body.hostname, body.access_token))
    await job_store.run(job_store.resume_writes, body.project or "-")
    trained = trainer.model_for(body.project)
    return SetupResponse(model_version=trained.version if trained else predictor.model_version)


@router.post(
    "/predict",
    summary="Pre-annotate tasks: one prediction per task, in task order",
    response_model=PredictResponse,
    response_model_exclude_none=True,
    responses={
        200: {"content": {"application/json": {"example": PREDICT_RESPONSE_EXAMPLE}}},
        **UNREADABLE,
        422: UNPROCESSABLE,
        413: {
            "model": ErrorResponse,
            "description": "More tasks than MAX_QUEUE, more regions than MAX_REGIONS, a "
            "task of more pages than MAX_PAGES, more images than MAX_PREDICT_IMAGES, a "
            "label config over MAX_LABEL_CONFIG_BYTES or a body over MAX_REQUEST_BYTES",
        },
        503: {
            "model": ErrorResponse,
            "description": "The OCR queue is full, or the Ray cluster is lost; retry later",
        },
    },
    # The body is read off the event loop (predict_body.py), not by FastAPI: documented here.
    openapi_extra=predict_body_openapi(PREDICT_EXAMPLES),
)
async def predict(
    body: PredictRequestDep,
    stored: ProjectSetupDep,
    label_studio: LabelStudioDep,
    settings: SettingsDep,
    predictor: PredictorDep,
    admission: AdmissionDep,
    queued: QueuedPredictionsDep,
    log_context: RequestContextDep,
) -> PredictResponse | ConfirmedAnswer:
    """Read every line of text in each task's image: one region per line.

    Answers within PREDICT_DEADLINE. A task not read by then, or whose image
    cannot be fetched or decoded, comes back without `result` (with `status`,
    `reason` and `error`), so Label Studio stores the others and asks for it
    again later; one not read yet is read in the background and written to
    Label Studio through its API.
    """
    # From the request's arrival: reading a body of 500,000 tasks takes seconds of it.
    deadline = log_context.started + settings.predict_deadline
    log_context.tasks = len(body.tasks)
    config = body.label_config or (stored.label_config if stored else None)
    if not config:
        raise HTTPException(
            status_code=422,
            detail="label_config is missing and /setup was not called for project "
            f"{body.project!r}: send the project's label config XML in label_config",
        )
    try:
        targets = await targets_for(config, settings)
    except LabelConfigError as exc:
        raise HTTPException(status_code=422, detail=f"label_config: {exc}") from None
    context = PredictContext(
        label_studio=label_studio, request_id=log_context.id, project=body.project
    )
    check_pages(body.tasks, targets, settings)  # TooManyPages: 413, see handlers.py
    drawn = drawn_regions(body.params.context if body.params else None)
    # Every page of a multi-page task is one image in the queue, as a task's image is;
    # with regions drawn, only the pages drawn on.
    images = images_to_read(body.tasks, targets, drawn)
    await predictor.engine.ready()  # a lost Ray cluster: 503 now, not work queued for nothing
    if drawn is not None:
        # Interactive: read only what the user just drew, here and now, ahead of bulk work.
        # QueueFull, TooManyTasks and TooManyRegions: see handlers.py
        with admission.admit(images, pages=targets.multi_page):
            if len(drawn) > settings.max_regions:
                raise TooManyRegions(len(drawn), settings.max_regions)
            results = [
                await predictor.read_drawn(task, targets, drawn, context) for task in body.tasks
            ]
    else:
        # A person waiting for one task is bounded by the admission queue and goes ahead of
        # bulk work. More tasks: any number, waiting on disk, not in memory.
        person = priority_of(body.tasks) is Priority.PEOPLE
        with admission.admit(images, pages=targets.multi_page) if person else nullcontext():
            entries, summary, carried = await queued.predict(
                body.tasks,
                project=body.project,
                label_config=config,
                label_studio=label_studio,
                deadline=deadline,
                request_id=log_context.id,
            )
        log_context.outcome = summary.describe()
        log_context.failed = summary.failed
        request_id = log_context.id
        # Delivered only once sent: a client that hung up gets them written instead.
        return ConfirmedAnswer(
            await anyio.to_thread.run_sync(render_results, entries),
            sent=lambda: queued.answers_sent(carried, request_id),
            not_sent=lambda: queued.answers_not_sent(carried, request_id),
        )
    log_context.failed = sum(
        1 for result in results if isinstance(result, NotPredicted) and result.status == "failed"
    )
    return PredictResponse(results=results)


@router.post(
    "/webhook",
    summary="Annotation events and training requests",
    response_model=WebhookResponse,
    responses=UNREADABLE,
)
async def webhook(
    body: Annotated[WebhookRequest, Body(openapi_examples=WEBHOOK_EXAMPLES)],
    trainer: TrainerDep,
) -> WebhookResponse:
    """START_TRAINING ("Start Training" on the model card, or every N annotations) starts a
    training in the background and is answered at once; other events are acknowledged."""
    if body.action != "START_TRAINING":
        return WebhookResponse(status="ok", detail=f"event {body.action} acknowledged; ignored")
    return start_training(trainer, body.project)


@router.post(
    "/train",
    summary="Training request from a Label Studio with the training webhook off (legacy)",
    response_model=WebhookResponse,
    responses=UNREADABLE,
)
async def train(body: TrainRequest, trainer: TrainerDep) -> WebhookResponse:
    return start_training(trainer, body.project)


def start_training(trainer: Trainer, project: object) -> WebhookResponse:
    why = trainer.enabled
    if why is not None:
        return WebhookResponse(status="ignored", detail=why)
    number = project_id(project)
    if number is None:
        raise HTTPException(
            status_code=422,
            detail='a training request needs the project: {"project": {"id": <id>}}',
        )
    job, state = trainer.start(number)
    return WebhookResponse(
        status=state.replace("already ", ""),
        detail=f"training project {number}: {state}; progress in GET /jobs",
        job=job,
    )


@router.get(
    "/versions", summary="Model versions this backend serves", response_model=VersionsResponse
)
async def versions(predictor: PredictorDep) -> VersionsResponse:
    return VersionsResponse(versions=[predictor.model_version])
