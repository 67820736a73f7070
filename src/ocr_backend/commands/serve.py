"""`ocr-backend serve` (the default): validate settings, load the engine, serve with uvicorn."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile

import uvicorn
from pydantic import ValidationError

from ..settings import Settings, format_settings_error

HELP = "serve the Label Studio ML backend on PORT (the default command)"


def load_settings() -> Settings | None:
    """The settings from the environment, or None after saying on stderr what is wrong."""
    try:
        return Settings()
    except ValidationError as exc:
        for line in format_settings_error(exc).splitlines():
            print(f"ocr-backend: {line}", file=sys.stderr)
        return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`serve` takes no options: every setting is an environment variable."""


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if settings is None:
        return 2
    from ..logs import configure_logging

    configure_logging(settings.log_level)
    if settings.workers > 1:
        # Before prometheus-client is first imported (by .api and .engine below): it
        # decides then whether metrics are per process or shared through files. A fresh
        # folder each start, since old files would add a previous run's counts.
        metrics_dir = tempfile.mkdtemp(prefix="ocr-backend-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        try:
            return serve(settings)
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return serve(settings)


def serve(settings: Settings) -> int:
    from ..errors import StartupError
    from ..jobs.database import JOBS_DIR, check_job_store
    from ..jobs.store import SCHEMA

    try:
        # The queue on disk first, before the heavy imports: a broken one is reported in
        # a second or two (or after the bounded wait for a lock), not after the engine.
        check_job_store(settings.model_dir / JOBS_DIR, SCHEMA)
    except StartupError as exc:
        print(f"ocr-backend: {exc}", file=sys.stderr)
        return 1

    # Imported after validation so a wrong setting is reported in well under a second.
    from ..api import create_app
    from ..engine import load_engine
    from ..ocr.reader import check_startup

    engine = None
    try:
        if settings.workers == 1:
            # Load here so the port opens only with a warm engine.
            engine = load_engine(settings)
            app: object = create_app(settings, engine=engine)
        else:
            # Each worker loads its own engine; check what would stop them all first.
            check_startup(settings)
            app = "ocr_backend.api:create_app_from_env"
    except StartupError as exc:
        print(f"ocr-backend: {exc}", file=sys.stderr)
        return 1

    # uvicorn drains in-flight requests on SIGTERM/SIGINT, then re-raises the signal
    # into the handler it found. A stop that was asked for and done cleanly exits 0.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, lambda *_: None)
    try:
        uvicorn.run(
            app,  # type: ignore[arg-type]
            factory=settings.workers > 1,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level.lower(),
            access_log=False,  # ocr_backend.requests logs each request, with its id
            timeout_graceful_shutdown=30,
            # Longer than clients keep an idle connection (httpx: 5 s, uvicorn's own default):
            # with equal timeouts a client can send on a connection the server is closing, and
            # that request gets no answer at all (seen once per ~2,000 in bench/load.py).
            timeout_keep_alive=15,
        )
    finally:
        if engine is not None:  # with RAY_ADDRESS: its driver process stops with it
            engine.close()
    return 0
