"""Label Studio's REST API, as far as pre-annotation needs it: write predictions, list tasks.

The token goes only to Label Studio's host (`LabelStudioAuth` sees to it).
Error messages say what the user can change and never quote Label Studio's
answer beyond its short `detail`: an answer may echo the task's data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from ..errors import LabelStudioError
from .tokens import CREATE_PAT, LabelStudioAuth

PAGE_SIZE = 100


@dataclass(frozen=True)
class TaskSummary:
    """A task of a project, and the model versions of the predictions it already has."""

    id: int
    data: dict[str, Any]
    model_versions: frozenset[str]
    raw: dict[str, Any]


class LabelStudioClient:
    """Calls Label Studio at `host` with `auth`, through an httpx client the caller owns."""

    def __init__(self, http: httpx.AsyncClient, host: str, auth: LabelStudioAuth | None) -> None:
        self.http = http
        self.host = host.rstrip("/")
        self.auth = auth

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        if self.auth is None:
            raise LabelStudioError(
                f"no token for Label Studio at {self.host}: set LABEL_STUDIO_ACCESS_TOKEN to a "
                f"personal access token; {CREATE_PAT}",
                reason="no_token",
            )
        url = f"{self.host}{path}"
        try:
            response = await self.http.request(
                method, url, auth=self.auth, follow_redirects=False, **kwargs
            )
        except LabelStudioError:
            raise
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # Never connected: nothing was sent.
            raise LabelStudioError(
                f"cannot reach Label Studio at {self.host} ({type(exc).__name__}); "
                "is LABEL_STUDIO_HOST right and Label Studio up?",
                reason="unreachable",
            ) from None
        except httpx.TimeoutException:
            # Sent, maybe whole: Label Studio may have done it and answered late.
            raise LabelStudioError(
                f"Label Studio at {self.host} did not answer {method} {path} in time "
                "(FETCH_TIMEOUT)",
                reason="timeout",
            ) from None
        except httpx.HTTPError as exc:
            raise LabelStudioError(
                f"the connection to Label Studio at {self.host} was cut during {method} {path} "
                f"({type(exc).__name__})",
                reason="cut",
            ) from None
        if response.status_code in (401, 403):
            raise LabelStudioError(
                f"Label Studio at {self.host} refused the token from {self.auth.source} for "
                f"{method} {path} (HTTP {response.status_code}): the token's user needs access "
                f"to the project; a legacy key may be disabled: use a personal access token, "
                f"{CREATE_PAT}",
                reason="refused",
            )
        if response.status_code >= 400:
            raise LabelStudioError(
                f"Label Studio at {self.host} answered {method} {path} with HTTP "
                f"{response.status_code}{_detail(response)}",
                reason=f"http_{response.status_code}",
            )
        try:
            return response.json() if response.content else None
        except ValueError:
            raise LabelStudioError(
                f"Label Studio at {self.host} answered {method} {path} with something other "
                "than JSON; is LABEL_STUDIO_HOST Label Studio itself?",
                reason="not_json",
            ) from None

    async def create_prediction(
        self, task_id: int, result: list[dict[str, Any]], score: float, model_version: str
    ) -> int | None:
        """Store one prediction for a task; its id."""
        body = {"task": task_id, "result": result, "score": score, "model_version": model_version}
        created = await self._call("POST", "/api/predictions/", json=body)
        return created.get("id") if isinstance(created, dict) else None

    async def task(self, task_id: int) -> dict[str, Any] | None:
        """A task as Label Studio holds it (`id`, `project`, `data`, ...); None when gone."""
        try:
            found = await self._call("GET", f"/api/tasks/{task_id}/")
        except LabelStudioError as exc:
            if exc.reason == "http_404":
                return None
            raise
        return found if isinstance(found, dict) else None

    async def prediction_versions(self, task_id: int) -> set[str]:
        """The model versions of the predictions a task has."""
        found = await self._call("GET", "/api/predictions/", params={"task": task_id})
        items = found if isinstance(found, list) else (found or {}).get("results", [])
        return {str(item.get("model_version")) for item in items if isinstance(item, dict)}

    async def project_tasks(self, project: int) -> AsyncIterator[TaskSummary]:
        """Every task of a project, page by page, with its predictions' model versions."""
        page = 1
        while True:
            body = await self._call(
                "GET",
                "/api/tasks",
                params={"project": project, "page": page, "page_size": PAGE_SIZE, "fields": "all"},
            )
            tasks = body.get("tasks", []) if isinstance(body, dict) else body or []
            for task in tasks:
                yield TaskSummary(
                    id=int(task["id"]),
                    data=task.get("data") or {},
                    model_versions=frozenset(
                        str(p.get("model_version"))
                        for p in task.get("predictions") or []
                        if isinstance(p, dict)
                    ),
                    raw=task,
                )
            total = body.get("total") if isinstance(body, dict) else None
            if not tasks or (isinstance(total, int) and page * PAGE_SIZE >= total):
                return
            page += 1

    async def project(self, project: int) -> dict[str, Any]:
        found = await self._call("GET", f"/api/projects/{project}/")
        return found if isinstance(found, dict) else {}


def _detail(response: httpx.Response) -> str:
    """Label Studio's short `detail`, if its answer has one; never the whole body."""
    try:
        body = response.json()
    except ValueError:
        return ""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str) and detail:
        return f": {detail[:200]}"
    return ""
