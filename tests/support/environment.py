"""The environment variables the service reads, so that none leaks from the shell into a test.

A developer's shell may hold BASIC_AUTH_USER or LANG_LIST for their own
service; a test (or a service a test starts) must see only what it sets.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ocr_backend.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]

# Read outside Settings: where workers share metrics, and the cluster to join.
OTHER_SERVICE_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "RAY_ADDRESS")


def service_variables() -> frozenset[str]:
    """Every variable the service reads: one per setting (upper-cased), and the others."""
    prefix = Settings.model_config.get("env_prefix", "")
    settings = {(prefix + name).upper() for name in Settings.model_fields}
    return frozenset(settings | set(OTHER_SERVICE_VARIABLES))


def without_service_variables(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """`environ` (the process's own by default) less every variable the service reads.

    Settings match names case-insensitively, so `lang_list` goes too.
    """
    names = service_variables()
    environ = os.environ if environ is None else environ
    return {key: value for key, value in environ.items() if key.upper() not in names}


def with_source_path(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` with this checkout's src/ first on PYTHONPATH: a child runs this code."""
    source = str(REPO_ROOT / "src")
    rest = environ.get("PYTHONPATH")
    return {**environ, "PYTHONPATH": source + (os.pathsep + rest if rest else "")}
