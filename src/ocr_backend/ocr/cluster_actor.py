"""What runs on the Ray cluster, and joining it: the actor, its options, start-up.

ocr/cluster.py's pool uses these; everything here imports Ray lazily, only
when RAY_ADDRESS is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ClusterUnreachable, StartupError
from ..images.crop import Crop
from .lines import TextLine
from .local import LocalEngine
from .shipped_weights import ShippedWeights, WeightsCache, actor_folder

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)

NAMESPACE = "ocr-backend"
# Connecting to an address that does not answer: Ray itself retries for minutes.
CONNECT_TIMEOUT = 10.0

# What an actor answers for an image: its lines, the seconds it took, its node.
Read = tuple[list[TextLine], float, str]

# Pools of this process joined to the cluster: Ray has one connection per process.
_drivers = 0


class OcrActor:
    """Runs on a Ray worker: one EasyOCR reader in its own thread (a LocalEngine of one thread).

    Made a Ray actor class by `actor_class`; the methods are async so that
    the actor answers `ready` pings while its reader thread is busy. A project's
    recogniser arrives as `ShippedWeights` (ocr/shipped_weights.py): its bytes come
    from Ray's object store into a file of this actor, never from the service's disk.
    """

    def __init__(self, settings: Settings) -> None:
        """Build the reader from the settings, torch sized to the actor's CPUs, not the node's."""
        import ray

        self.node = ray.get_runtime_context().get_node_id()
        self.error: str | None = None
        self.device = ""
        self.weights = WeightsCache(actor_folder())
        self.in_use: Counter[str] = Counter()  # digests of the weights reads use now
        try:
            self.engine = LocalEngine.load(
                settings, threads=1, torch_threads=max(1, int(settings.ray_actor_cpus))
            )
            self.device = self.engine.device
        except StartupError as exc:
            # Raising would make Ray restart this actor forever; `ready` reports it instead.
            self.error = str(exc)

    async def ready(self) -> dict[str, Any]:
        return {"node": self.node, "device": self.device, "pid": os.getpid(), "error": self.error}

    async def read(self, image: np.ndarray, recogniser: ShippedWeights | None) -> Read:
        started = time.perf_counter()
        async with self._weights_file(recogniser) as weights:
            lines = await self.engine.read(image, weights)
        return lines, time.perf_counter() - started, self.node

    async def read_region(self, crop: Crop, recogniser: ShippedWeights | None) -> Read:
        started = time.perf_counter()
        async with self._weights_file(recogniser) as weights:
            lines = await self.engine.read_region(crop, weights)
        return lines, time.perf_counter() - started, self.node

    @contextlib.asynccontextmanager
    async def _weights_file(self, recogniser: ShippedWeights | None) -> AsyncIterator[Path | None]:
        """This actor's file of the weights sent, fetched from the object store when new;
        kept while a read uses it (another project's weights arriving never remove it)."""
        if recogniser is None:
            yield None
            return
        digest = recogniser.digest
        self.in_use[digest] += 1
        try:
            found = self.weights.find(digest)
            if found is None:
                data = await recogniser.ref
                found = await asyncio.to_thread(
                    self.weights.store, digest, data, frozenset(self.in_use)
                )
            yield found
        finally:
            self.in_use[digest] -= 1
            if not self.in_use[digest]:
                del self.in_use[digest]


@dataclass(eq=False)
class Member:
    """One actor of the pool, as the service sees it."""

    handle: Any
    started: float = field(default_factory=time.monotonic)
    up: bool = False
    node: str = ""
    device: str = ""
    in_flight: int = 0
    last_used: float = field(default_factory=time.monotonic)
    ping: Any = None  # the ObjectRef of the ping not yet answered
    ping_sent: float = 0.0


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # an HTTP/2 SETTINGS frame


def speaks_grpc(host: str, port: int) -> bool:
    """Whether host:port answers the HTTP/2 preface with a SETTINGS frame, as Ray's GCS
    and its client server (both gRPC) do at once. Raises OSError when nothing listens.

    `ray.init` on a port that accepts TCP but is not Ray (a dashboard, a proxy) neither
    joined nor failed: no message after 150 s.
    """
    with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT) as connection:
        try:
            connection.sendall(HTTP2_PREFACE + EMPTY_SETTINGS)
            header = b""
            while len(header) < 9:
                chunk = connection.recv(9 - len(header))
                if not chunk:
                    return False
                header += chunk
        except TimeoutError:
            return False
    return header[3] == 0x04  # the frame's type: SETTINGS


def check_address(settings: Settings) -> None:
    """Fail in seconds, with one clear message, where `ray.init` would hang or fail late.

    Needs no Ray import: the service asks it before it starts its driver process.
    Raises ClusterUnreachable.
    """
    address = settings.ray_address or "auto"
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
        # Said before the probe below, which waits CONNECT_TIMEOUT on a port that is silent.
        raise ClusterUnreachable(
            f"RAY_ADDRESS={address}: a ray:// address requires pip package `ray[client]` "
            "(grpcio is not installed; the cluster extra installs plain ray). Install it, "
            "give the Ray head's GCS address (host:6379) instead, or unset RAY_ADDRESS to "
            "read in this process"
        )
    if host and port.isdigit():
        # Ray retries an address that does not answer for minutes: ask it once first.
        try:
            speaks = speaks_grpc(host, int(port))
        except OSError as exc:
            raise ClusterUnreachable(
                f"RAY_ADDRESS={address}: nothing answers there ({exc.strerror or exc}). Start "
                "the Ray head (`ray start --head`), fix RAY_ADDRESS, or unset it to read in "
                "this process"
            ) from None
        if not speaks:
            raise ClusterUnreachable(
                f"RAY_ADDRESS={address}: something listens there but it is not Ray (it did not "
                f"answer as a gRPC server within {CONNECT_TIMEOUT:g} s; a dashboard port or a "
                "proxy?). Give the Ray head's GCS address (port 6379 by default) or "
                "ray://host:10001, or unset RAY_ADDRESS to read in this process"
            )
    if importlib.util.find_spec("ray") is None:
        raise ClusterUnreachable(
            "RAY_ADDRESS is set but Ray is not installed: install the cluster extra "
            "(pip install 'ocr-backend[cluster]'; images: docker build --build-arg "
            "EXTRAS=cluster), or unset RAY_ADDRESS to read in this process"
        )


def connect(settings: Settings) -> Any:
    """`ray.init` on RAY_ADDRESS, failing in seconds with one clear message."""
    address = settings.ray_address or "auto"
    check_address(settings)
    import ray

    global _drivers
    if ray.is_initialized():  # another pool of this process (benchmarks) already joined
        _drivers += 1
        return ray
    try:
        ray.init(
            address=address,
            namespace=NAMESPACE,
            logging_level=logging.WARNING,
            configure_logging=False,
        )
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise ClusterUnreachable(
            f"RAY_ADDRESS={address}: cannot join the Ray cluster: {exc}. Unset RAY_ADDRESS "
            "to read in this process"
        ) from None
    _drivers = 1
    return ray


def disconnect(ray: Any) -> None:
    """`ray.shutdown` once the last pool of this process is closed."""
    global _drivers
    _drivers -= 1
    if _drivers <= 0:
        _drivers = 0
        ray.shutdown()


def actor_class(settings: Settings) -> Any:
    import ray

    options: dict[str, Any] = {
        "num_cpus": settings.ray_actor_cpus,
        "num_gpus": settings.ray_actor_gpus,
        "max_restarts": -1,  # come back wherever the cluster has room
        "max_task_retries": 0,  # the pool re-dispatches: see the module's docstring
        "max_concurrency": 16,  # pings are answered while the reader thread reads
        "scheduling_strategy": "SPREAD",  # one big batch spreads over every node
    }
    if settings.ray_actor_resources:
        options["resources"] = dict(settings.ray_actor_resources)
    return ray.remote(OcrActor).options(**options)


def start_actors(ray: Any, settings: Settings, members: list[Member]) -> None:
    """Wait until every actor has loaded EasyOCR, or say why not. Raises ClusterUnreachable."""
    pings = {member.handle.ready.remote(): member for member in members}
    ready, pending = ray.wait(
        list(pings), num_returns=len(pings), timeout=settings.ray_start_timeout
    )
    try:
        for ref in ready:
            try:
                answer = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                raise ClusterUnreachable(f"a Ray actor died while loading EasyOCR: {exc}") from None
            if answer["error"]:
                raise ClusterUnreachable(
                    f"a Ray actor on node {answer['node'][:12]} cannot load EasyOCR: "
                    f"{answer['error']}"
                )
            member = pings[ref]
            member.up, member.node, member.device = True, answer["node"], answer["device"]
        if pending:
            asked = {"CPU": settings.ray_actor_cpus, "GPU": settings.ray_actor_gpus}
            asked |= settings.ray_actor_resources
            each = ", ".join(f"{k} {v:g}" for k, v in asked.items() if v)
            has = ", ".join(
                f"{k} {v:g}"
                for k, v in sorted(ray.cluster_resources().items())
                if not k.startswith(("node:", "memory", "object_store_memory"))
            )
            raise ClusterUnreachable(
                f"only {len(ready)} of RAY_ACTORS={len(members)} Ray actors started within "
                f"RAY_START_TIMEOUT={settings.ray_start_timeout:g} s. Each asks for {each}; "
                f"the cluster has in all: {has or 'nothing'}. Add worker nodes, or lower "
                "RAY_ACTORS or what each actor asks for"
            )
    except ClusterUnreachable:
        for member in members:
            ray.kill(member.handle, no_restart=True)
        raise
