"""A project's recogniser weights sent to the cluster's actors through Ray's object store.

The service knows a project's model as a file under its own MODEL_DIR; an
actor on another machine has no such file. So the pool's driver reads the
file once per model version, puts its bytes into Ray's object store and
sends the actors a `ShippedWeights`: the bytes' SHA-256 and the reference to
them. Each actor keeps the weights it was sent in files of its own, named by
that digest (a few, the least recently used let go first), and fetches the
bytes from the object store only for a digest it does not hold. No actor
ever opens a path of the service's machine.

Nothing here imports Ray: the driver passes its `ray.put`, the actor awaits
the reference itself.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..processes import pid_alive

# Model versions the driver keeps in the object store (about 15 MB each for english_g2):
# every project served lately, so a busy project's next read sends 64 bytes, not 15 MB.
SHIPPED_MODELS = 8
# Weight files each actor keeps (its one reader thread keeps 2 readers besides the stock one).
ACTOR_FILES = 4


@dataclass(frozen=True)
class ShippedWeights:
    """What an actor is sent in place of a path: the weights' digest and where the bytes are.

    The reference sits inside this object, so Ray does not fetch the bytes with every
    call: the actor fetches them only when it lacks a file of that digest.
    """

    digest: str
    ref: Any  # ray.ObjectRef of the weights' bytes


Signature = tuple[int, int, int]  # inode, size, modification time: a file rewritten in place


class WeightsShipper:
    """The driver's side: one object-store copy per model version, the latest few kept."""

    def __init__(self, put: Callable[[bytes], Any], keep: int = SHIPPED_MODELS) -> None:
        self._put = put
        self._keep = keep
        self._shipped: OrderedDict[Path, tuple[Signature, ShippedWeights]] = OrderedDict()
        self._lock = threading.Lock()

    def ship(self, path: Path) -> ShippedWeights:
        """The weights at `path` in the object store, put there on their first use.

        A file gone since it was shipped (moved away by a rollback or a cleaned
        MODEL_DIR while its project's reads were queued) is still served from what was
        shipped; a file never shipped and not there raises FileNotFoundError.
        """
        try:
            stat = path.stat()
            signature: Signature | None = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        except FileNotFoundError:
            signature = None
        with self._lock:
            known = self._shipped.get(path)
            if known is not None and signature in (None, known[0]):
                self._shipped.move_to_end(path)
                return known[1]
        if signature is None:
            raise FileNotFoundError(f"the recogniser weights {path} are not there")
        data = path.read_bytes()
        shipped = ShippedWeights(hashlib.sha256(data).hexdigest(), self._put(data))
        with self._lock:
            self._shipped[path] = (signature, shipped)
            self._shipped.move_to_end(path)
            while len(self._shipped) > self._keep:
                self._shipped.popitem(last=False)  # Ray frees the bytes once unreferenced
        return shipped


def actor_folder(root: Path | None = None) -> Path:
    """This actor process's own folder of weights, on its node's temporary disk; the
    folders of actors whose process is gone (killed, restarted) are removed first."""
    root = root or Path(tempfile.gettempdir()) / "ocr-backend-weights"
    root.mkdir(parents=True, exist_ok=True)
    for folder in root.glob("actor-*"):
        pid = folder.name.removeprefix("actor-")
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
    mine = root / f"actor-{os.getpid()}"
    mine.mkdir(exist_ok=True)
    return mine


class WeightsCache:
    """The actor's side: weight files named by digest in its own folder, at most `keep`."""

    def __init__(self, folder: Path, keep: int = ACTOR_FILES) -> None:
        self.folder = folder
        self.keep = keep

    def path(self, digest: str) -> Path:
        if not (len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
            raise ValueError(f"not a SHA-256 digest: {digest[:80]!r}")
        return self.folder / f"{digest}.pth"

    def find(self, digest: str) -> Path | None:
        """The file of these weights if this actor holds it (marked as just used)."""
        path = self.path(digest)
        try:
            os.utime(path)
        except FileNotFoundError:
            return None
        return path

    def store(self, digest: str, data: bytes, in_use: frozenset[str] = frozenset()) -> Path:
        """Keep `data` (checked against `digest`) in its file, written whole; the least
        recently used files beyond `keep` go, except those of digests `in_use`."""
        if hashlib.sha256(data).hexdigest() != digest:
            raise ValueError(f"the recogniser weights sent do not match their digest {digest}")
        path = self.path(digest)
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        files = sorted(self.folder.glob("*.pth"), key=_used, reverse=True)
        for old in files[self.keep :]:
            if old != path and old.stem not in in_use:
                old.unlink(missing_ok=True)
        return path


def _used(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return time.time()
