"""Pydantic models of what Label Studio sends and what it accepts back (docs/label-studio.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Task(BaseModel):
    """A Label Studio task; only `data` matters here, the rest is kept as sent."""

    model_config = ConfigDict(extra="allow")

    id: int | None = Field(
        default=None,
        ge=-(2**63),
        le=2**63 - 1,
        description="The task's id in Label Studio, a 64-bit integer.",
    )
    data: dict[str, Any] = Field(
        description="The task's data; the Image tag's $variable names the key."
    )


class PredictParams(BaseModel):
    model_config = ConfigDict(extra="allow")

    context: dict[str, Any] | None = Field(
        default=None, description="Interactive pre-annotation: the regions the user just drew."
    )


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    tasks: list[Task] = Field(min_length=1, description="Tasks to pre-annotate, in order.")
    project: str | None = Field(default=None, description='"<project id>.<created timestamp>"')
    label_config: str | None = Field(
        default=None, description="The project's label config XML; defaults to what /setup sent."
    )
    params: PredictParams | None = None


class Prediction(BaseModel):
    """One task's prediction; Label Studio reads result, score and model_version."""

    result: list[dict[str, Any]] = Field(description="Regions: geometry, label and text items.")
    score: float = Field(description="Mean confidence of the lines read (0 when none).")
    model_version: str


class NotPredicted(BaseModel):
    """A task with no prediction in this answer: it failed, or is not read yet.

    It has no `result` key on purpose: Label Studio skips such an item and
    stores the others, and asks for the task again on the next "Retrieve
    predictions". An empty `result` would be stored as "no text" for good.
    """

    model_version: str
    status: Literal["failed", "pending", "delivered"] = Field(
        description="failed: its image could not be had (a later request tries again); "
        "pending: still queued or being read, it will be written to Label Studio; "
        "delivered: its prediction reached Label Studio another way (not sent twice)."
    )
    reason: str = Field(description='A short fixed word, e.g. "http_status", "deadline".')
    error: str = Field(description="What happened, in a sentence a person can act on.")


class PredictResponse(BaseModel):
    results: list[Prediction | NotPredicted] = Field(
        description="One entry per task, in task order: a prediction, or why there is none."
    )


class SetupRequest(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    project: str | None = None
    label_config: str = Field(alias="schema", description="The project's label config XML.")
    hostname: str | None = Field(default=None, description="Label Studio's URL.")
    access_token: str | None = Field(default=None, description="The project owner's API key.")
    extra_params: dict[str, Any] | None = None


class SetupResponse(BaseModel):
    model_version: str


class VersionsResponse(BaseModel):
    versions: list[str]


class WebhookRequest(BaseModel):
    """An annotation event (acknowledged) or a training request (START_TRAINING)."""

    model_config = ConfigDict(extra="allow")

    action: str | None = Field(
        default=None, description='e.g. "ANNOTATION_CREATED", "START_TRAINING"'
    )
    project: dict[str, Any] | None = None


class WebhookResponse(BaseModel):
    status: str = Field(description="ok, ignored, or for a training: started, queued, running")
    detail: str
    job: str | None = Field(default=None, description="The training's job id (see GET /jobs).")


class TrainRequest(BaseModel):
    """The legacy `/train` (Label Studio with its webhook flag off): the annotated tasks are
    sent along; the backend fetches them itself, as for START_TRAINING."""

    model_config = ConfigDict(extra="allow")

    project: Any = None
    annotations: list[Any] | None = None
    label_config: str | None = None


class ErrorResponse(BaseModel):
    detail: str = Field(description="What went wrong and what to do about it.")
