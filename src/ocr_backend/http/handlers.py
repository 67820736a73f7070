"""Answers to requests that are not what Label Studio sends, in words a user can act on.

`detail` stays FastAPI's list of errors (clients parse it), without the
`input` FastAPI echoes back: the input can hold Label Studio's access token or
the user's password (`params.password`). `message` says the same in one line
that Label Studio can show as it is.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from ..errors import ClusterUnavailable, QueueFull, RequestError
from .observe import current

EXAMPLE_BODY = '{"tasks": [{"id": 1, "data": {"ocr": "https://..."}}], "label_config": "<View>..."}'


def explain(error: dict[str, Any]) -> str:
    """One validation error as a sentence: where, and what is wrong there."""
    loc = [str(part) for part in error.get("loc", ())]
    where = ".".join(loc[1:] if loc[:1] == ["body"] else loc)
    kind = error.get("type", "")
    if kind == "json_invalid":
        why = (error.get("ctx") or {}).get("error", "cannot be parsed")
        return f"The request body is not valid JSON ({why}). Send a JSON object: {EXAMPLE_BODY}"
    if kind in ("model_attributes_type", "dict_type") and where == "":
        return f"The request body must be a JSON object, e.g. {EXAMPLE_BODY}"
    if kind == "missing":
        return f'"{where}" is required but missing' if where else "The request body is missing"
    if kind == "too_short" and where == "tasks":
        return '"tasks" is empty: send at least one task'
    message = str(error.get("msg", "is invalid"))
    return f'"{where}": {message}' if where else message


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{k: v for k, v in e.items() if k != "input"} for e in exc.errors()]
    message = "; ".join(dict.fromkeys(explain(e) for e in errors))
    return JSONResponse(
        status_code=422,
        content=jsonable_encoder({"detail": errors, "message": message}),
    )


# What FastAPI says when the body is not even text (not UTF-8, broken form data).
FASTAPI_UNPARSABLE = "There was an error parsing the body"


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    if exc.status_code == 400 and exc.detail == FASTAPI_UNPARSABLE:
        path = request.url.path
        example = f"e.g. {EXAMPLE_BODY}" if path == "/predict" else f"(/docs has {path}'s example)"
        return JSONResponse(
            status_code=400,
            content={"detail": f"The request body cannot be read: send UTF-8 JSON {example}"},
        )
    return await http_exception_handler(request, exc)


async def request_refused(request: Request, exc: RequestError) -> Response:
    """A request refused whole: too many tasks (413), the queue full or the cluster lost (503)."""
    headers = None
    if isinstance(exc, QueueFull):
        current().outcome = "queue full"
        headers = {"Retry-After": str(exc.retry_after)}
    elif isinstance(exc, ClusterUnavailable):
        current().outcome = "cluster unavailable"
        headers = {"Retry-After": str(exc.retry_after)}
    return JSONResponse({"detail": str(exc)}, status_code=exc.status_code, headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestError, request_refused)  # type: ignore[arg-type]
