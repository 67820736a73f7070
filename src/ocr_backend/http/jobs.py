"""GET /jobs: how far each project's bulk pre-annotation, and its training, have come.

Without basic auth anyone who reaches the service may ask, so an anonymous
caller sees counts only: no project ids (which /setup and /predict accept as
names), no failure messages (they name image paths and hosts), no write
errors (they name Label Studio's address), and of a training only its state
and figures (its step names a failure's cause; its version names the project).
With BASIC_AUTH_USER set every caller has passed basic auth, and sees everything.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..jobs.progress import job_progress
from .deps import JobStoreDep, ProjectsDep, SettingsDep, TrainerDep

router = APIRouter()

# What only an operator (basic auth on) sees.
DETAILS = ("project", "failure_examples", "not_written")
TRAINING_DETAILS = ("project", "step", "pid", "version")
HIDDEN = (
    "project ids, failure messages, write errors and training steps are shown only with "
    "basic auth on (BASIC_AUTH_USER and BASIC_AUTH_PASS)"
)


@router.get("/jobs", summary="Each project's bulk job: queued, reading, written, failed, pace")
async def jobs(
    store: JobStoreDep, settings: SettingsDep, projects: ProjectsDep, trainer: TrainerDep
) -> dict[str, Any]:
    """Every project with tasks in the last day, from the queue all worker processes share.

    `answered`: given in a /predict answer; `written`: written to Label Studio
    through its API; `done_waiting`: read, not delivered yet (`not_written`
    says why, when writing failed; `writes_stopped` when Label Studio refused
    it too often); `failures`: failed tasks by reason, with `failure_examples`;
    `images_per_second` over the last minute and `seconds_left` for what is
    queued. At most 50 projects are listed on their own (those /setup knows
    first); the rest are summed as "(others)".

    `trainings`: each project's latest fine-tuning (docs/training.md): its
    `state` (queued, running, promoted, kept_aside, failed, interrupted),
    `done` (0-1), `step`, and its CER before and after once measured.

    Without basic auth: counts only (no `project`, `failure_examples` or
    `not_written`; of a training no `project`, `step`, `pid` or `version`).
    """

    def known(project: str) -> bool:
        return projects.known(None if project == "-" else project)

    progress = await store.run(job_progress, store, known)
    shown = [job.as_dict() for job in progress]
    trainings = trainer.trainings()
    if settings.basic_auth_user is not None:
        return {"jobs": shown, "trainings": trainings}
    return {
        "jobs": [{k: v for k, v in job.items() if k not in DETAILS} for job in shown],
        "trainings": [
            {k: v for k, v in training.items() if k not in TRAINING_DETAILS}
            for training in trainings
        ],
        "hidden": HIDDEN,
    }
