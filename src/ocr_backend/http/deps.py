"""Typed dependencies: what a route needs arrives as `Annotated[..., Depends(...)]`.

All are `async def`: FastAPI runs a plain `def` dependency in a worker
thread, a hop that /health (one second on Label Studio's side) need not pay.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..engine import Engine
from ..jobs.answers import QueuedPredictions
from ..jobs.store import JobStore
from ..label_studio.projects import ProjectSetup, ProjectStore
from ..label_studio.schemas import PredictRequest
from ..label_studio.storage import LabelStudio
from ..predictor import Predictor
from ..settings import Settings
from ..training.trainer import Trainer
from .admission import AdmissionQueue
from .lifespan import STATE_KEY, Services
from .observe import RequestContext, current
from .predict_body import read_predict_request


async def get_services(request: Request) -> Services:
    services: Services = getattr(request.state, STATE_KEY)
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings(services: ServicesDep) -> Settings:
    return services.settings


async def get_engine(services: ServicesDep) -> Engine:
    return services.engine


async def get_predictor(services: ServicesDep) -> Predictor:
    return services.predictor


async def get_admission(services: ServicesDep) -> AdmissionQueue:
    """The images in hand now, against MAX_QUEUE: what a person's /predict is admitted by."""
    return services.admission


async def get_projects(services: ServicesDep) -> ProjectStore:
    return services.projects


async def get_queued_predictions(services: ServicesDep) -> QueuedPredictions:
    """/predict's way through the job queue on disk."""
    return services.queued


async def get_trainer(services: ServicesDep) -> Trainer:
    return services.trainer


async def get_job_store(services: ServicesDep) -> JobStore:
    return services.job_store


SettingsDep = Annotated[Settings, Depends(get_settings)]
QueuedPredictionsDep = Annotated[QueuedPredictions, Depends(get_queued_predictions)]
JobStoreDep = Annotated[JobStore, Depends(get_job_store)]
TrainerDep = Annotated[Trainer, Depends(get_trainer)]
EngineDep = Annotated[Engine, Depends(get_engine)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
AdmissionDep = Annotated[AdmissionQueue, Depends(get_admission)]
ProjectsDep = Annotated[ProjectStore, Depends(get_projects)]


async def get_request_context() -> RequestContext:
    """What this request's log line will say; routes add to it."""
    return current()


RequestContextDep = Annotated[RequestContext, Depends(get_request_context)]


async def get_predict_request(request: Request) -> PredictRequest:
    """/predict's body, shared by the route and the dependencies that read its project.

    Read and checked off the event loop, task by task (predict_body.py); the route
    documents it with PREDICT_BODY, as FastAPI would a declared body.
    """
    return await read_predict_request(request)


PredictRequestDep = Annotated[PredictRequest, Depends(get_predict_request)]


async def get_project_setup(body: PredictRequestDep, projects: ProjectsDep) -> ProjectSetup | None:
    """What /setup last sent for the project this /predict names, if anything."""
    return projects.load(body.project)


ProjectSetupDep = Annotated[ProjectSetup | None, Depends(get_project_setup)]


async def get_label_studio(services: ServicesDep, setup: ProjectSetupDep) -> LabelStudio:
    """The Label Studio this request's images come from: settings first, then /setup's."""
    return services.fetcher.connect(setup)


LabelStudioDep = Annotated[LabelStudio, Depends(get_label_studio)]
