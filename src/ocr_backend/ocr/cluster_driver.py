"""What runs in the service's Ray driver process (started by ocr/cluster_process.py).

It joins the cluster, holds the pool (ocr/cluster.py's `ClusterEngine`),
reads each image the service sends through the pipe and answers it, and
reports the pool's health every REPORT_SECONDS. When Ray ends this process
(its local node gone), the service sees the pipe close; when the service
goes, this process sees it close and stops.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import threading
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StartupError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from ..settings import Settings

log = logging.getLogger(__name__)

# How often the pool's health is reported to the service.
REPORT_SECONDS = 0.5
# Put into the object store once a report (see `_serve`).
PROBE = b"ocr-backend"


def portable(error: Exception) -> Exception:
    """The error itself where it pickles (ClusterUnavailable does), else its text."""
    try:
        pickle.dumps(error)
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def drive(settings: Settings, connection: Connection) -> None:
    """The driver process: join the cluster, start the pool, read what the service sends."""
    from ..logs import configure_logging

    configure_logging(settings.log_level)
    from .cluster import ClusterEngine

    try:
        engine = ClusterEngine.load(settings)
    except StartupError as exc:
        connection.send(("failed", str(exc)))
        return
    engine.took = []  # the seconds of each read, for the service's OCR_SECONDS
    try:
        connection.send(("ready", {"device": engine.device, "health": engine.health()}))
        asyncio.run(_serve(engine, connection))
    finally:
        engine.close()


async def _serve(engine: Any, connection: Connection) -> None:
    """Read each image sent, answer each, report the pool's health, until told to stop."""
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

    def listen() -> None:  # the pipe's reads block: in a thread of their own
        while True:
            try:
                message = connection.recv()
            except (EOFError, OSError):  # the service is gone
                message = ("stop",)
            loop.call_soon_threadsafe(inbox.put_nowait, message)
            if message[0] == "stop":
                return

    def send(message: tuple[Any, ...]) -> None:
        try:
            connection.send(message)
        except OSError:  # the service is gone
            inbox.put_nowait(("stop",))

    async def read(call: int, method: str, image: Any, recogniser: Path | None) -> None:
        try:
            lines = await getattr(engine, method)(image, recogniser)
        except asyncio.CancelledError:
            return
        except Exception as exc:
            send(("failed", call, portable(exc)))
        else:
            send(("read", call, lines))

    async def report() -> None:
        import ray

        refused = False
        while True:
            # The object store every read puts its image into, touched once a report: a
            # lost local node then ends this process now, not at the next image.
            try:
                await asyncio.to_thread(ray.put, PROBE)
                refused = False
            except Exception as exc:  # a full object store, say: the report still goes out
                if not refused:
                    log.warning("Ray driver: the object store refused a put: %s", exc)
                refused = True
            took, engine.took[:] = list(engine.took), []
            health = engine.health()
            reads = dict(engine.reads_by_node)
            send(("health", health, reads, engine.redispatched, engine.seconds_per_image, took))
            await asyncio.sleep(REPORT_SECONDS)

    threading.Thread(target=listen, name="ray-driver-inbox", daemon=True).start()
    reading: dict[int, asyncio.Task[None]] = {}

    def forget(call: int, _: object) -> None:
        reading.pop(call, None)

    reporter = asyncio.create_task(report())
    while True:
        message = await inbox.get()
        if message[0] == "stop":
            break
        if message[0] == "read":
            call = message[1]
            task = asyncio.create_task(read(*message[1:]))
            reading[call] = task
            task.add_done_callback(partial(forget, call))
        elif message[0] == "cancel" and message[1] in reading:
            reading[message[1]].cancel()
    reporter.cancel()
    for task in list(reading.values()):
        task.cancel()
