"""The Ray pool in a process of its own, so that losing the cluster cannot end the service.

Ray ends its driver process when the driver's local Ray node goes away: with
the backend on the head's machine, a head killed made the service exit with
status 1 and no log line ("The connection to the plasma store is failed.
Terminate the process", in Ray's own log file only), 4 s after the kill, on
the next read. So the service is not the driver: `ClusterProcess` starts a
child process that joins the cluster and holds the pool (ocr/cluster.py's
`ClusterEngine`), and speaks to it through a pipe. It has the engine's
interface, so the predictor does not know the difference.

When the child exits, the service stays up: it logs one line that says what
was lost, answers 503 (`ClusterUnavailable`) to every read and `ready()`,
and /health says "degraded" with the reason in `cluster.lost`. Every
REJOIN_SECONDS it starts a new child, which joins again once the cluster at
RAY_ADDRESS answers and the actors have loaded.

An image crosses the pipe once, pickled (a 1.7 MB page: a few ms), as it
crossed to the actors before.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ClusterUnavailable, ClusterUnreachable
from ..images.crop import Crop
from ..metrics import CLUSTER_ACTORS_UP, CLUSTER_REDISPATCHED, ENGINE_LOAD_SECONDS, OCR_SECONDS
from .cluster_actor import check_address
from .cluster_driver import drive
from .easyocr_reader import NAME, easyocr_version
from .lines import TextLine

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from ..settings import Settings

log = logging.getLogger(__name__)

# How often a lost cluster is tried again (each try: the address probed, then the actors).
REJOIN_SECONDS = 10.0
# How long `ready()` sleeps between looks at the driver's last report.
POLL_SECONDS = 0.25
# A driver process silent this long (it reports every 0.5 s) makes /health say "degraded".
SILENT_SECONDS = 10.0


class ClusterProcess:
    """The engine of a service with RAY_ADDRESS: the Ray pool, run in a child process."""

    name = NAME

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.version = easyocr_version()
        self.languages = tuple(settings.lang_list)
        self.device = "cpu"
        # Images in hand across the pool: the predictor decodes this many (+2) at once.
        self.threads = settings.ray_pool_max
        self.seconds_per_image = 1.0
        self.redispatched = 0
        self.reads_by_node: dict[str, int] = {}
        self._pool: dict[str, Any] | None = None  # the pool's last health report
        self._reported = time.monotonic()
        self._lost: str | None = None  # why there is no pool, while there is none
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._closing = threading.Event()
        self._ids = itertools.count()
        self._waiting: dict[int, Waiting] = {}
        self._connection: Connection | None = None
        self._process: BaseProcess | None = None

    @classmethod
    def load(cls, settings: Settings) -> ClusterProcess:
        """Start the driver process and wait for its pool. Raises ClusterUnreachable."""
        started = time.perf_counter()
        check_address(settings)  # a wrong address is told in seconds, without Ray
        engine = cls(settings)
        engine._start()
        ENGINE_LOAD_SECONDS.set(time.perf_counter() - started)
        return engine

    # --- the driver process --------------------------------------------------------------

    def _start(self) -> None:
        """A driver process whose pool is up, or ClusterUnreachable with its reason."""
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        connection, child_end = context.Pipe()
        process = context.Process(
            target=drive,
            args=(self.settings, child_end),
            name="ocr-backend-ray-driver",
            daemon=True,  # stopped, not waited for, if this process exits without close()
        )
        process.start()
        child_end.close()
        try:
            while not connection.poll(1.0):
                if not process.is_alive():
                    break
            message = connection.recv()
        except (EOFError, OSError):
            process.join(5)
            connection.close()
            raise ClusterUnreachable(
                f"RAY_ADDRESS={self.settings.ray_address}: the Ray driver process exited "
                f"with status {process.exitcode} while joining the cluster"
            ) from None
        if message[0] != "ready":
            process.join(10)
            connection.close()
            raise ClusterUnreachable(message[1])
        self.device = message[1]["device"]
        with self._lock:
            self._connection, self._process = connection, process
            self._pool, self._lost = message[1]["health"], None
        self._take_report(message[1]["health"], {}, 0, self.seconds_per_image, [])
        threading.Thread(
            target=self._listen, args=(connection, process), name="ray-driver-answers", daemon=True
        ).start()
        if self._closing.is_set():  # closed while this one was joining
            self.close()

    def _listen(self, connection: Connection, process: BaseProcess) -> None:
        """Hand each answer of the driver process to its caller; notice when it is gone."""
        while True:
            try:
                message = connection.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "health":
                self._take_report(*message[1:])
            elif kind == "read":
                self._answer(message[1], message[2], None)
            elif kind == "failed":
                self._answer(message[1], None, message[2])
        connection.close()
        process.join(5)
        self._driver_lost(process.exitcode)

    def _take_report(
        self,
        health: dict[str, Any],
        reads_by_node: dict[str, int],
        redispatched: int,
        seconds_per_image: float,
        took: list[float],
    ) -> None:
        for seconds in took:
            OCR_SECONDS.observe(seconds)
        with self._lock:
            self._pool, self._reported = health, time.monotonic()
            self.reads_by_node = reads_by_node
            more, self.redispatched = redispatched - self.redispatched, redispatched
            self.seconds_per_image = seconds_per_image
        if more > 0:
            CLUSTER_REDISPATCHED.inc(more)
        CLUSTER_ACTORS_UP.set(health["cluster"]["actors_up"])

    def _answer(self, call: int, lines: Any, error: BaseException | None) -> None:
        with self._lock:
            waiting = self._waiting.pop(call, None)
        if waiting is not None:  # else the caller gave up (cancelled)
            settle(waiting, lines, error)

    def _driver_lost(self, status: int | None) -> None:
        if self._closing.is_set():
            return
        lost = (
            f"the Ray driver process exited with status {status}; Ray ends its driver when "
            "the cluster's head, or the Ray node on this machine, goes away"
        )
        with self._lock:
            self._lost = lost
            self._connection = None
            waiting, self._waiting = self._waiting, {}
        CLUSTER_ACTORS_UP.set(0)
        for each in waiting.values():
            settle(each, None, self._unavailable())
        log.error(
            "Lost the Ray cluster at RAY_ADDRESS=%s: %s. /predict answers 503 and /health says "
            "degraded until it is back; joining it again every %g s",
            self.settings.ray_address,
            lost,
            REJOIN_SECONDS,
        )
        threading.Thread(target=self._rejoin, name="ray-rejoin", daemon=True).start()

    def _rejoin(self) -> None:
        """Start a driver process every REJOIN_SECONDS until one's pool is up."""
        said = ""
        while not self._closing.wait(REJOIN_SECONDS):
            try:
                check_address(self.settings)
                self._start()
            except Exception as exc:  # ClusterUnreachable, or a process that cannot start
                if str(exc) != said:  # once per reason, not every REJOIN_SECONDS
                    said = str(exc)
                    log.warning(
                        "Ray cluster still lost: %s; trying again every %g s", exc, REJOIN_SECONDS
                    )
                continue
            log.info("Ray cluster at RAY_ADDRESS=%s joined again", self.settings.ray_address)
            return

    def _unavailable(self) -> ClusterUnavailable:
        return ClusterUnavailable(
            f"The Ray cluster at RAY_ADDRESS={self.settings.ray_address} is lost ({self._lost}). "
            f"The service joins it again every {REJOIN_SECONDS:g} s once it answers: restart "
            "the Ray head (`ray start --head`) or the node, check `ray status`, and retry later",
            retry_after=round(REJOIN_SECONDS),
        )

    # --- the engine's interface ------------------------------------------------------------

    async def read(self, image: np.ndarray, recogniser: Path | None = None) -> list[TextLine]:
        return await self._call("read", image, recogniser)

    async def read_region(self, crop: Crop, recogniser: Path | None = None) -> list[TextLine]:
        return await self._call("read_region", crop, recogniser)

    async def _call(
        self, method: str, image: np.ndarray | Crop, recogniser: Path | None
    ) -> list[TextLine]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[TextLine]] = loop.create_future()
        with self._lock:
            connection = self._connection
            if self._lost is not None or connection is None:
                raise self._unavailable()
            call = next(self._ids)
            self._waiting[call] = (loop, future)
        try:
            with self._send_lock:
                connection.send(("read", call, method, image, recogniser))
        except OSError:  # the driver process is gone: _listen answers the others
            with self._lock:
                self._waiting.pop(call, None)
            raise self._unavailable() from None
        try:
            return await future
        except asyncio.CancelledError:
            with self._lock:
                self._waiting.pop(call, None)
            self._send_quietly(connection, ("cancel", call))  # free the actor for the next image
            raise

    def _send_quietly(self, connection: Connection, message: tuple[Any, ...]) -> None:
        try:
            with self._send_lock:
                connection.send(message)
        except OSError:
            pass

    async def ready(self) -> None:
        """Returns once an actor is up; raises ClusterUnavailable at once while the
        cluster is lost, or after RAY_WAIT_SECONDS without an actor up."""
        from .cluster import check_wait

        waiting_since: float | None = None
        while True:
            with self._lock:
                lost, pool = self._lost, self._pool
            if lost is not None:
                raise self._unavailable()
            if pool is not None and pool["cluster"]["actors_up"]:
                return
            waiting_since = check_wait(self.settings, waiting_since)
            await asyncio.sleep(POLL_SECONDS)

    def health(self) -> dict[str, Any]:
        """The pool's last report (every 0.5 s), or what is lost. Never waits."""
        with self._lock:
            pool = self._pool or {"cluster": {}}
            silent = time.monotonic() - self._reported
            if self._lost is None and silent > SILENT_SECONDS:
                # Stuck, not lost: the reads in hand may still be answered.
                stuck = f"the Ray driver process has not reported for {silent:.0f} s"
                return {"degraded": True, "cluster": {**pool["cluster"], "lost": stuck}}
            if self._lost is None:
                return {**pool, "cluster": {**pool["cluster"], "lost": None}}
            return {
                "degraded": True,
                "cluster": {
                    **pool["cluster"],
                    "actors_up": 0,
                    "actors": 0,
                    "nodes_up": 0,
                    "images_in_hand": 0,
                    "lost": self._lost,
                },
            }

    def close(self) -> None:
        self._closing.set()
        with self._lock:
            connection, process = self._connection, self._process
        if connection is not None:
            self._send_quietly(connection, ("stop",))
        if process is not None:
            process.join(15)
            if process.is_alive():
                process.terminate()
                process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)


Waiting = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


def settle(waiting: Waiting, lines: Any, error: BaseException | None) -> None:
    """Answer a caller waiting on its own event loop, from the thread that got the answer."""
    loop, future = waiting

    def answer() -> None:
        if future.done():  # cancelled meanwhile
            return
        if error is None:
            future.set_result(lines)
        else:
            future.set_exception(error)

    loop.call_soon_threadsafe(answer)
