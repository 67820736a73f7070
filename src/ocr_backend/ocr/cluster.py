"""Reading on a Ray cluster: a pool of actors, each holding one warm EasyOCR reader.

Used instead of the in-process engine when RAY_ADDRESS is set; it has the
same interface (engine.py's `Engine`), so the predictor and everything above
it do not know where the images are read. Each actor builds its own reader
from the settings (cluster_actor.py) and reads drawn regions as this
process would (ocr/drawn.py). A project's recogniser goes to the actors
through Ray's object store, put once per model version (ocr/shipped_weights.py):
their node has no file of this machine. Ray is imported only here and in
cluster_actor.py (the actors, joining the cluster), only when this engine loads.

Each image goes to the actor with the fewest images in hand. An actor or
node lost mid-read costs no image: the call fails (or stops answering
pings), the actor is marked down and the image is sent to another actor.
Ray restarts lost actors (`max_restarts=-1`) wherever the cluster has room,
and the pool takes them back once they answer. Ray's own task retry is off
(`max_task_retries=0`): it would wait for the same actor to come back, and
an actor whose node is gone may wait for a free node forever. When no actor
is up for RAY_WAIT_SECONDS, the read fails with `ClusterUnavailable` (503).

With RAY_ACTORS_MAX above RAY_ACTORS the pool grows by one actor whenever
every actor has an image in hand, up to the maximum; on a cluster with an
autoscaler (KubeRay), an actor that does not fit asks Ray for a new node.
Actors above RAY_ACTORS that stay idle for IDLE_SECONDS are let go.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ClusterUnavailable
from ..images.crop import Crop
from ..metrics import (
    CLUSTER_ACTORS_UP,
    CLUSTER_REDISPATCHED,
    ENGINE_LOAD_SECONDS,
    OCR_SECONDS,
)
from .cluster_actor import Member, Read, actor_class, connect, disconnect, start_actors
from .easyocr_reader import NAME, easyocr_version
from .lines import TextLine
from .shipped_weights import WeightsShipper

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)

# How often the pool pings its actors, and how long an unanswered ping may take
# before the actor counts as down (an actor answers pings while it reads).
PING_SECONDS = 1.0
PING_TIMEOUT = 10.0
# Actors above RAY_ACTORS idle this long are let go.
IDLE_SECONDS = 120.0
# How often a waiting call checks that its actor is still up.
POLL_SECONDS = 0.25


def check_wait(settings: Settings, since: float | None) -> float:
    """When a wait for an actor began; raises ClusterUnavailable once over RAY_WAIT_SECONDS."""
    now = time.monotonic()
    since = now if since is None else since
    if now - since > settings.ray_wait_seconds:
        raise ClusterUnavailable(
            f"No Ray actor could read for {settings.ray_wait_seconds:g} s "
            f"(RAY_WAIT_SECONDS): the cluster at RAY_ADDRESS={settings.ray_address} "
            "is down or has no room for the pool; retry later",
            retry_after=max(1, round(settings.ray_wait_seconds)),
        )
    return since


def _put(data: bytes) -> Any:
    import ray

    return ray.put(data)


class _MemberDown(Exception):
    """The actor a call waits on was marked down by the monitor."""


class ClusterEngine:
    """A pool of OcrActor on a Ray cluster, behind the in-process engine's interface."""

    name = NAME

    def __init__(self, settings: Settings, actors: Any, members: list[Member]) -> None:
        self.settings = settings
        # The EasyOCR this service ships: the actors run the same image.
        self.version = easyocr_version()
        self.languages = tuple(settings.lang_list)
        self.device = members[0].device if members else "cpu"
        # Images in hand across the pool: the predictor decodes this many (+2) at once.
        self.threads = settings.ray_pool_max
        self.seconds_per_image = 1.0
        self.redispatched = 0
        self.idle_seconds = IDLE_SECONDS
        self.reads_by_node: Counter[str] = Counter()
        # The seconds of each read, when a driver process reports them (cluster_process.py).
        self.took: list[float] | None = None
        self._actors = actors
        self._members = members
        self._shipper = WeightsShipper(_put)
        self._growing: Member | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        CLUSTER_ACTORS_UP.set(sum(m.up for m in members))
        self._monitor = threading.Thread(target=self._watch, name="ray-pool", daemon=True)
        self._monitor.start()

    # --- start-up ----------------------------------------------------------------------

    @classmethod
    def load(cls, settings: Settings) -> ClusterEngine:
        """Connect to RAY_ADDRESS and start RAY_ACTORS actors. Raises ClusterUnreachable."""
        started = time.perf_counter()
        ray = connect(settings)
        try:
            actors = actor_class(settings)
            actors = partial(actors.remote, settings)
            members = [Member(actors()) for _ in range(settings.ray_actors)]
            start_actors(ray, settings, members)
        except BaseException:
            disconnect(ray)
            raise
        engine = cls(settings, actors, members)
        took = time.perf_counter() - started
        ENGINE_LOAD_SECONDS.set(took)
        log.info(
            "Ray pool ready on %s: %d actor(s) (up to %d) on %d node(s), %s CPU / %s GPU each, "
            "in %.1f s",
            settings.ray_address,
            len(members),
            settings.ray_pool_max,
            len({m.node for m in members}),
            settings.ray_actor_cpus,
            settings.ray_actor_gpus,
            took,
        )
        return engine

    # --- reading -----------------------------------------------------------------------

    async def read(self, image: np.ndarray, recogniser: Path | None = None) -> list[TextLine]:
        return await self._call("read", image, recogniser)

    async def read_region(self, crop: Crop, recogniser: Path | None = None) -> list[TextLine]:
        return await self._call("read_region", crop, recogniser)

    async def _call(
        self, method: str, image: np.ndarray | Crop, recogniser: Path | None
    ) -> list[TextLine]:
        import ray

        data = ray.put(image)  # once: a re-dispatched image is not sent from here again
        # A project's weights go by the object store too: the actor's node lacks our files.
        shipped = None
        if recogniser is not None:
            shipped = await asyncio.to_thread(self._shipper.ship, recogniser)
        waiting_since: float | None = None
        while True:
            member = self._choose()
            if member is None:
                waiting_since = self._check_wait(waiting_since)
                await asyncio.sleep(POLL_SECONDS)
                continue
            waiting_since = None
            ref = getattr(member.handle, method).remote(data, shipped)
            try:
                future = asyncio.wrap_future(ref.future())
                while True:
                    done, _ = await asyncio.wait({future}, timeout=POLL_SECONDS)
                    if done:
                        return self._record(future.result())
                    if not member.up:
                        future.cancel()
                        raise _MemberDown
            except (ray.exceptions.RayActorError, _MemberDown) as exc:
                self._lost(member, exc)
            except asyncio.CancelledError:
                ray.cancel(ref)  # the request is gone: free the actor for the next image
                raise
            finally:
                self._release(member)

    async def ready(self) -> None:
        """Returns once an actor is up; raises ClusterUnavailable after RAY_WAIT_SECONDS.

        /predict asks before it queues work: with the whole cluster lost, the
        answer is a 503 in RAY_WAIT_SECONDS, not tasks left waiting for nothing.
        """
        waiting_since: float | None = None
        while not any(member.up for member in self._members):
            waiting_since = self._check_wait(waiting_since)
            await asyncio.sleep(POLL_SECONDS)

    def _choose(self) -> Member | None:
        """The up actor with the fewest images in hand (taking one more), or None."""
        with self._lock:
            up = [m for m in self._members if m.up]
            if not up:
                return None
            member = min(up, key=lambda m: m.in_flight)
            if member.in_flight and self._growing is None:
                self._grow()
            member.in_flight += 1
            member.last_used = time.monotonic()
            return member

    def _release(self, member: Member) -> None:
        with self._lock:
            member.in_flight -= 1
            member.last_used = time.monotonic()

    def _check_wait(self, since: float | None) -> float:
        return check_wait(self.settings, since)

    def _record(self, result: Read) -> list[TextLine]:
        lines, took, node = result
        OCR_SECONDS.observe(took)
        if self.took is not None:
            self.took.append(took)
        # Per actor; the pool as a whole reads `threads` at a time, as local threads do.
        self.seconds_per_image = 0.8 * self.seconds_per_image + 0.2 * took
        with self._lock:
            self.reads_by_node[node] += 1
        return lines

    def _lost(self, member: Member, exc: BaseException, *, image_in_hand: bool = True) -> None:
        with self._lock:
            was_up, member.up = member.up, False
            if image_in_hand:  # that image goes to another actor
                self.redispatched += 1
                CLUSTER_REDISPATCHED.inc()
            CLUSTER_ACTORS_UP.set(sum(m.up for m in self._members))
        if was_up:
            why = "stopped answering" if isinstance(exc, _MemberDown) else type(exc).__name__
            log.warning(
                "Ray actor on node %s lost (%s); its images go to the other actors",
                member.node[:12],
                why,
            )

    # --- the pool's health ---------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """What /health adds: whether capacity is down, and the pool's actors and nodes."""
        with self._lock:
            up = [m for m in self._members if m.up]
            return {
                "degraded": len(up) < self.settings.ray_actors,
                "cluster": {
                    "address": self.settings.ray_address,
                    "actors_up": len(up),
                    "actors": len(self._members),
                    "actors_min": self.settings.ray_actors,
                    "actors_max": self.settings.ray_pool_max,
                    "nodes_up": len({m.node for m in up}),
                    "images_in_hand": sum(m.in_flight for m in self._members),
                    "redispatched": self.redispatched,
                    # Short node ids, as `ray status` shows them.
                    "images_read_by_node": {
                        node[:12]: count for node, count in sorted(self.reads_by_node.items())
                    },
                },
            }

    def _watch(self) -> None:
        """Ping every actor, mark it up or down, and grow or shrink the pool."""
        import ray

        while not self._stop.wait(PING_SECONDS):
            try:
                self._ping_all(ray)
                self._shrink(ray)
            except Exception:  # the monitor must outlive a bad moment of the cluster
                log.exception("Ray pool monitor")

    def _ping_all(self, ray: Any) -> None:
        now = time.monotonic()
        with self._lock:
            members = list(self._members)
        for member in members:
            if member.ping is None:
                member.ping, member.ping_sent = member.handle.ready.remote(), now
                continue
            ready, _ = ray.wait([member.ping], timeout=0)
            if not ready:
                if member.up and now - member.ping_sent > PING_TIMEOUT:
                    self._lost(member, _MemberDown(), image_in_hand=False)
                continue
            try:
                answer = ray.get(member.ping)
            except ray.exceptions.RayActorError as exc:
                if member.up:
                    self._lost(member, exc, image_in_hand=False)
            else:
                self._answered(member, answer)
            member.ping = None

    def _answered(self, member: Member, answer: dict[str, Any]) -> None:
        if answer["error"]:
            # Only an actor added while running gets here (start-up checks the first ones).
            log.error("Ray actor on node %s cannot read: %s", answer["node"][:12], answer["error"])
            with self._lock:
                self._members.remove(member)
                if member is self._growing:
                    self._growing = None
            import ray

            ray.kill(member.handle, no_restart=True)
            return
        with self._lock:
            back = not member.up
            member.up, member.node, member.device = True, answer["node"], answer["device"]
            if member is self._growing:
                self._growing = None
            CLUSTER_ACTORS_UP.set(sum(m.up for m in self._members))
        if back:
            log.info("Ray actor on node %s is up", member.node[:12])

    def _grow(self) -> None:
        """Ask Ray for one more actor (under the lock); the monitor takes it in once ready."""
        if len(self._members) >= self.settings.ray_pool_max:
            return
        member = Member(self._actors())
        self._members.append(member)
        self._growing = member
        log.info("Every Ray actor is busy: starting actor %d", len(self._members))

    def _shrink(self, ray: Any) -> None:
        now = time.monotonic()
        with self._lock:
            growing = self._growing
            if growing is not None and now - growing.started > self.settings.ray_start_timeout:
                # The cluster has no room for it (and no autoscaler gave it a node).
                self._members.remove(growing)
                self._growing = None
                ray.kill(growing.handle, no_restart=True)
            spare = len(self._members) - self.settings.ray_actors
            for member in list(self._members):
                idle_for = now - member.last_used
                idle = member.up and not member.in_flight and idle_for > self.idle_seconds
                if spare > 0 and idle:
                    self._members.remove(member)
                    spare -= 1
                    ray.kill(member.handle, no_restart=True)
                    log.info("Ray actor on node %s idle: let go", member.node[:12])
            CLUSTER_ACTORS_UP.set(sum(m.up for m in self._members))

    def close(self) -> None:
        import ray

        self._stop.set()
        self._monitor.join(timeout=5)
        for member in self._members:
            try:
                ray.kill(member.handle, no_restart=True)
            except Exception:  # noqa: S110 - the cluster may already be gone
                pass
        disconnect(ray)
