"""GET /jobs: how far each project's bulk pre-annotation, and its training, have come."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..jobs.progress import job_progress
from .deps import JobStoreDep, TrainerDep

router = APIRouter()


@router.get("/jobs", summary="Each project's bulk job: queued, reading, written, failed, pace")
async def jobs(store: JobStoreDep, trainer: TrainerDep) -> dict[str, Any]:
    """Every project with tasks in the last day, from the queue all worker processes share.

    `answered`: given in a /predict answer; `written`: written to Label Studio
    through its API; `done_waiting`: read, not delivered yet (`not_written`
    says why, when writing failed); `failures`: failed tasks by reason, with
    `failure_examples`; `images_per_second` over the last minute and
    `seconds_left` for what is queued.

    `trainings`: each project's latest fine-tuning (docs/training.md): its
    `state` (queued, running, promoted, kept_aside, failed, interrupted),
    `done` (0-1), `step`, and its CER before and after once measured.
    """
    progress = await store.run(job_progress, store)
    return {
        "jobs": [job.as_dict() for job in progress],
        "trainings": trainer.trainings(),
    }
