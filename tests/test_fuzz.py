"""Fuzz every route from the service's own OpenAPI schema (schemathesis).

Whatever schemathesis sends, valid or not, the answer is never a 5xx and
always matches what the schema promises. Kept small (max_examples) to fit CI.
The fuzzer runs the app in-process; image fetches could only reach names the
stand-in resolver below allows, which is none but the loopback.
"""

from __future__ import annotations

import socket

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ocr_backend.api import create_app
from ocr_backend.images import netguard

REAL_GETADDRINFO = socket.getaddrinfo


def loopback_only(host, port, *args, **kwargs):
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise socket.gaierror(socket.EAI_NONAME, f"{host}: not resolved in tests")
    return REAL_GETADDRINFO(host, port, *args, **kwargs)


SCHEMA_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def operations(settings, engine) -> dict[str, object]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(settings, engine=engine))
    return {op.ok().label: op.ok() for op in schema.get_all_operations()}


# schemathesis's pytest plugin (`from_fixture`) does not run under pytest 9: the
# operations are driven through hypothesis here instead.
@pytest.mark.slow  # generated requests to every operation, for seconds
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_gives_a_server_error_or_breaks_the_schema(settings, engine, monkeypatch, mode):
    monkeypatch.setattr(netguard.socket, "getaddrinfo", loopback_only)
    found = operations(settings, engine)
    assert {"POST /predict", "POST /setup", "GET /health", "GET /metrics"} <= set(found)
    for operation in found.values():
        if mode == GenerationMode.NEGATIVE and not len(operation.body):
            continue  # nothing to get wrong: no parameters, no body

        @given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis_settings(
            max_examples=15,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case):
            case.call_and_validate(checks=SCHEMA_CHECKS)

        fuzz()
