"""/predict's body, read and checked off the event loop, one task at a time.

FastAPI parses a body with one `json.loads` and validates it with one call
into pydantic, both on the event loop, both holding the GIL throughout: a
body of 500,000 tasks (32 MB) held /health (Label Studio gives it one
second) for 12 s. Here the body is parsed by the standard library's own
JSON scanner, the top-level object key by key and the `tasks` array item by
item, each task checked against the `Task` model as soon as it is parsed,
in a worker thread. Each step is a short call, so the event loop gets the
GIL back every few milliseconds. The JSON accepted and the errors answered
are those of FastAPI: a 422 whose `detail` names each field that is wrong
(`["body", "tasks", 3, "data"]`), or a 400 for bytes that are not text.
"""

from __future__ import annotations

import email.message
import json
import re
from typing import Any

import anyio.to_thread
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException

from ..label_studio.schemas import PredictRequest, Task

# At most this many tasks' errors in one 422: a body of 500,000 broken tasks would
# otherwise be answered with 500,000 errors, built on the event loop.
MAX_TASK_ERRORS = 100

# FastAPI's own words when a body is not text; handlers.py answers them with a sentence.
UNREADABLE = "There was an error parsing the body"

_DECODER = json.JSONDecoder()
_TASKS = TypeAdapter(list[Task])
CHECK_CHUNK = 500  # tasks checked by one call into pydantic: about 2 ms
_SPACE = re.compile(r"[ \t\n\r]*")


async def read_predict_request(request: Request) -> PredictRequest:
    """The /predict body as a PredictRequest; 422 or 400 as FastAPI would answer."""
    raw = await request.body()
    if not raw:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    if not _is_json(request.headers.get("content-type")):
        # FastAPI (strict about the content type) validates the bytes, which fails.
        return _validated(raw)
    return await anyio.to_thread.run_sync(parse_predict_request, raw)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def parse_predict_request(raw: bytes) -> PredictRequest:
    """Parse and check a /predict body, task by task (run it in a worker thread)."""
    try:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
    except (UnicodeDecodeError, LookupError):
        raise HTTPException(status_code=400, detail=UNREADABLE) from None
    whole: Any = None
    try:
        start = _skip(text, 0)
        if text.startswith("{", start):
            envelope, tasks, errors = _parse_object(text, start)
        else:
            whole = json.loads(text)  # not an object: the model says so below
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", exc.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": exc.msg},
                }
            ]
        ) from None
    except (RecursionError, ValueError):
        # Nesting too deep, a number of more than 4,300 digits: FastAPI's 400.
        raise HTTPException(status_code=400, detail=UNREADABLE) from None
    if not text.startswith("{", start):
        return _validated(whole)
    if tasks is None:  # no `tasks`, or not an array: the model names what is wrong
        return _validated(envelope)
    try:
        # The tasks are Task instances already: pydantic takes them as they are.
        request = PredictRequest.model_validate({**envelope, "tasks": tasks}, from_attributes=True)
    except ValidationError as exc:
        own = [e for e in _errors(exc) if not (errors and e["loc"][1:2] == ("tasks",))]
        raise RequestValidationError(errors + own) from None
    if errors:
        raise RequestValidationError(errors)
    return request


def _validated(body: Any) -> PredictRequest:
    try:
        return PredictRequest.model_validate(body, from_attributes=True)
    except ValidationError as exc:
        raise RequestValidationError(_errors(exc)) from None


def _errors(exc: ValidationError, tasks_from: int | None = None) -> list[dict[str, Any]]:
    """FastAPI's errors, each `loc` from "body"; with `tasks_from`, `exc` is a chunk's of
    tasks checked as a list, its first item being task number `tasks_from`."""
    errors = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        if tasks_from is not None:
            loc = ("tasks", tasks_from + int(loc[0]), *loc[1:])
        errors.append({**error, "loc": ("body", *loc)})
    return errors


def _skip(text: str, index: int) -> int:
    match = _SPACE.match(text, index)
    return match.end() if match else index


def _parse_object(
    text: str, index: int
) -> tuple[dict[str, Any], list[Task] | None, list[dict[str, Any]]]:
    """The top-level object from `text[index] == "{"`: its keys but `tasks`, the tasks
    (None when `tasks` is missing or not an array), and the tasks' errors."""
    envelope: dict[str, Any] = {}
    tasks: list[Task] | None = None
    errors: list[dict[str, Any]] = []
    index = _skip(text, index + 1)
    if text.startswith("}", index):
        return envelope, tasks, errors
    while True:
        if not text.startswith('"', index):
            raise json.JSONDecodeError(
                "Expecting property name enclosed in double quotes", text, index
            )
        key, index = _DECODER.raw_decode(text, index)
        index = _skip(text, index)
        if not text.startswith(":", index):
            raise json.JSONDecodeError("Expecting ':' delimiter", text, index)
        index = _skip(text, index + 1)
        if key == "tasks" and text.startswith("[", index):
            # As json.loads, a key given twice keeps its last value.
            tasks, errors, index = _parse_tasks(text, index)
            envelope.pop(key, None)
        else:
            envelope[key], index = _DECODER.raw_decode(text, index)
            if key == "tasks":
                tasks, errors = None, []
        index = _skip(text, index)
        if text.startswith(",", index):
            index = _skip(text, index + 1)
            continue
        if text.startswith("}", index):
            break
        raise json.JSONDecodeError("Expecting ',' delimiter", text, index)
    end = _skip(text, index + 1)
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return envelope, tasks, errors


def _parse_tasks(text: str, index: int) -> tuple[list[Task], list[dict[str, Any]], int]:
    """The array from `text[index] == "["`: its items parsed one by one, then checked as
    Tasks a chunk at a time (a third faster than one by one)."""
    tasks: list[Task] = []
    errors: list[dict[str, Any]] = []
    chunk: list[Any] = []
    first = 0  # the position in the array of the chunk's first item
    index = _skip(text, index + 1)
    if text.startswith("]", index):
        return tasks, errors, index + 1
    while True:
        item, index = _DECODER.raw_decode(text, index)
        chunk.append(item)
        index = _skip(text, index)
        end = text.startswith("]", index)
        if len(chunk) == CHECK_CHUNK or end:
            if len(errors) < MAX_TASK_ERRORS:
                try:
                    tasks.extend(_TASKS.validate_python(chunk, from_attributes=True))
                except ValidationError as exc:
                    errors.extend(_errors(exc, tasks_from=first))
            first += len(chunk)
            chunk = []
        if end:
            return tasks, errors[:MAX_TASK_ERRORS], index + 1
        if not text.startswith(",", index):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, index)
        index = _skip(text, index + 1)


# --- how the docs page shows the body --------------------------------------------------


def predict_body_openapi(examples: dict[str, Any]) -> dict[str, Any]:
    """The route's `openapi_extra`: the requestBody FastAPI would write for a declared
    `PredictRequest` body (its schema is added by `document_predict_request`)."""
    return {
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/PredictRequest"},
                    "examples": examples,
                }
            },
            "required": True,
        }
    }


def document_predict_request(spec: dict[str, Any]) -> dict[str, Any]:
    """Add PredictRequest and the models it holds to the spec's schemas, as FastAPI would."""
    _, top = models_json_schema(
        [(PredictRequest, "validation")], ref_template="#/components/schemas/{model}"
    )
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in top.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    spec["components"]["schemas"] = dict(sorted(schemas.items()))
    return spec
