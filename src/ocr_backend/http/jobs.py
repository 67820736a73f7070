"""GET /jobs: how far each project's bulk pre-annotation has come."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..jobs.progress import job_progress
from .deps import JobStoreDep, ProjectsDep

router = APIRouter()


@router.get("/jobs", summary="Each project's bulk job: queued, reading, written, failed, pace")
async def jobs(store: JobStoreDep, projects: ProjectsDep) -> dict[str, Any]:
    """Every project with tasks in the last day, from the queue all worker processes share.

    `answered`: given in a /predict answer; `written`: written to Label Studio
    through its API; `done_waiting`: read, not delivered yet (`not_written`
    says why, when writing failed); `failures`: failed tasks by reason, with
    `failure_examples`; `images_per_second` over the last minute and
    `seconds_left` for what is queued. At most 50 projects are listed on their
    own (those /setup knows first); the rest are summed as "(others)".
    """

    def known(project: str) -> bool:
        return projects.known(None if project == "-" else project)

    progress = await store.run(job_progress, store, known)
    return {"jobs": [job.as_dict() for job in progress]}
