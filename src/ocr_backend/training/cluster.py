"""The fine-tuning step as a Ray task on RAY_ADDRESS's cluster (TRAINING_ON; docs/training.md).

`ocr-backend train` exports the project on its own machine as always, then
joins the cluster as a Ray driver and runs the fine-tuning there, on a GPU
node when DEVICE names cuda (the task asks Ray for `num_gpus=1`), else on
TRAINING_THREADS CPUs of a node. What crosses the network:

- to the node: the export's recogniser crops and labels.csv files, train and
  held-out (at most MAX_SHIPPED_BYTES), and the weights of the model that
  serves the project now, if one does, to measure the new one against;
- back: the new weights' bytes and the figures (CERs, lines, seconds).

The stock weights are the node's own, found as its actors find theirs
(MODEL_DIR on that node, then the bundled English ones). The `train` process
writes the weights into the registry as an in-process training does: whole,
and served only if better.

The task is a Ray generator: it yields "started" (its node) once a node has
taken it, each step the fine-tuning reports, and last the result, so
progress reaches /jobs as it does in process. A cluster that does not answer
fails in seconds (the address is probed first); a task no node takes within
RAY_START_TIMEOUT fails with what it asked for and what the cluster has.
"""

from __future__ import annotations

import logging
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ..errors import ClusterUnreachable, StartupError
from .registry import write_atomically

if TYPE_CHECKING:
    from ..settings import Settings
    from .finetune import Outcome

log = logging.getLogger(__name__)

# The training data one task may carry through the object store. A project's export is a
# few MB (400 line crops: about 4 MB); beyond this, Ray's object store and the network
# are the wrong way to move it.
MAX_SHIPPED_BYTES = 512 * 2**20

Files = dict[str, bytes]  # path relative to the export folder (POSIX) -> contents
Progress = Callable[[float, str], None]


def pack_export(export: Path, limit: int = MAX_SHIPPED_BYTES) -> Files:
    """The export's recogniser folder (crops and labels.csv, train and held-out) as bytes.
    Raises ValueError beyond `limit` bytes."""
    files: Files = {}
    total = 0
    for path in sorted((export / "recogniser").rglob("*")):
        if not path.is_file():
            continue
        total += path.stat().st_size
        if total > limit:
            raise ValueError(
                f"the training data is over {limit // 2**20} MB, too much to send to the Ray "
                "cluster as one task; train on this machine (TRAINING_ON=local)"
            )
        files[path.relative_to(export).as_posix()] = path.read_bytes()
    return files


def unpack_export(files: Files, export: Path) -> None:
    """Write what `pack_export` packed under `export`; names that leave it are refused."""
    for name, data in files.items():
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"refused a training file named {name!r}")
        target = export.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def task_device(settings: Settings) -> str:
    """The device the task trains on: the GPU Ray gives it when DEVICE names cuda."""
    return "cuda" if settings.device is not None and settings.device.startswith("cuda") else "cpu"


def fine_tune_task(
    settings: Settings, files: Files, epochs: int, serving: bytes | None
) -> Iterator[tuple[Any, ...]]:
    """Runs on a cluster node: the fine-tuning of finetune.py on the training data sent.

    Yields ("started", node, device), ("progress", share, step)..., then ("done",
    weights, figures, serving CER or None).
    """
    import ray
    import torch

    from ..ocr.weights import locate_weights
    from .alphabet import recogniser_model
    from .finetune import fine_tune, held_out_cer

    device = task_device(settings)
    torch.set_num_threads(settings.training_threads)
    yield ("started", ray.get_runtime_context().get_node_id(), device)
    model = recogniser_model(settings.lang_list)
    stock = locate_weights(settings.lang_list, settings.model_dir, settings.model_download)[
        model.filename
    ]
    events: queue.Queue[tuple[Any, ...]] = queue.Queue()
    with tempfile.TemporaryDirectory(prefix="ocr-backend-training-") as scratch:
        root = Path(scratch)
        unpack_export(files, root / "export")

        def work() -> None:
            try:
                outcome = fine_tune(
                    root / "export",
                    stock,
                    model,
                    settings.lang_list,
                    root / "weights.pth",
                    epochs=epochs,
                    variants=settings.training_variants,
                    device=device,
                    progress=lambda share, step: events.put(("progress", share, step)),
                )
                serving_cer = None
                if serving is not None and outcome.better:
                    (root / "serving.pth").write_bytes(serving)
                    serving_cer = held_out_cer(
                        root / "serving.pth", root / "export", model, settings.lang_list, device
                    )
                events.put(("done", outcome, serving_cer))
            except BaseException as exc:
                events.put(("failed", exc))

        # The fine-tuning reports through a callback; the generator yields what it reports.
        threading.Thread(target=work, name="fine-tuning", daemon=True).start()
        while True:
            event = events.get()
            if event[0] == "progress":
                yield event
            elif event[0] == "failed":
                raise event[1]
            else:
                _, outcome, serving_cer = event
                weights = (root / "weights.pth").read_bytes()
                yield ("done", weights, asdict(outcome), serving_cer)
                return


def fine_tune_on_cluster(
    settings: Settings,
    export: Path,
    out: Path,
    *,
    epochs: int,
    serving: Path | None,
    progress: Progress,
) -> tuple[Outcome, float | None]:
    """Fine-tune on a node of RAY_ADDRESS's cluster; write the weights to `out` (whole).

    Returns the outcome and, when a project model serves (`serving`) and the new one
    beat the stock model, the serving model's held-out CER. Raises ClusterUnreachable
    (no cluster, no node with room, the node lost) and what the fine-tuning raises
    (ValueError: nothing to learn from).
    """
    from ..ocr.cluster_actor import connect, disconnect
    from .finetune import Outcome

    files = pack_export(export)
    size = sum(len(data) for data in files.values())
    crops = sum(1 for name in files if not name.endswith(".csv"))
    ray = connect(settings)
    try:
        progress(0.0, f"sending {crops} line crops ({size / 1e6:.1f} MB) to the Ray cluster")
        gpus = 1 if task_device(settings) == "cuda" else 0
        task = ray.remote(fine_tune_task).options(
            num_cpus=settings.training_threads, num_gpus=gpus, max_retries=0
        )
        stream = task.remote(settings, files, epochs, serving.read_bytes() if serving else None)
        started = _next(ray, stream, settings.ray_start_timeout)
        if started is None:
            _cancel(ray, stream)
            raise ClusterUnreachable(_no_room(ray, settings, gpus))
        _, node, device = started
        log.info("training on Ray node %s (%s)", node[:12], device)
        progress(0.0, f"fine-tuning on Ray node {node[:12]} ({device})")
        while True:
            event = _next(ray, stream, None)
            if event is None or event[0] not in ("progress", "done"):
                raise ClusterUnreachable(
                    f"the fine-tuning on Ray node {node[:12]} ended without its result"
                )
            if event[0] == "progress":
                progress(event[1], event[2])
                continue
            _, weights, figures, serving_cer = event
            write_atomically(out, weights)
            return Outcome(**figures), serving_cer
    finally:
        disconnect(ray)


def _next(ray: Any, stream: Any, timeout: float | None) -> tuple[Any, ...] | None:
    """The task's next event; None when it yields none within `timeout` or has ended.
    The task's own errors are raised as themselves where the `train` command names
    them (ValueError, StartupError), else as ClusterUnreachable with their text."""
    ready, _ = ray.wait([stream], timeout=timeout)
    if not ready:
        return None
    try:
        ref = next(stream)
    except StopIteration:
        return None
    try:
        event: tuple[Any, ...] = ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, ValueError | StartupError):
            raise cause from None
        raise ClusterUnreachable(
            f"the fine-tuning failed on the Ray cluster: {type(cause).__name__}: {cause}"
        ) from None
    except ray.exceptions.RayError as exc:  # the node or its worker lost
        raise ClusterUnreachable(
            f"the fine-tuning was lost on the Ray cluster: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    return event


def _cancel(ray: Any, stream: Any) -> None:
    try:
        ray.cancel(stream, force=True)
    except Exception:  # noqa: S110 - it never started; the cluster may be gone
        pass


def _no_room(ray: Any, settings: Settings, gpus: int) -> str:
    """What the task asked for, and what each node of the cluster has (one node must fit it)."""
    asked = f"CPU {settings.training_threads}" + (f", GPU {gpus}" if gpus else "")
    nodes = [
        ", ".join(
            f"{k} {v:g}"
            for k, v in sorted(node["Resources"].items())
            if not k.startswith(("node:", "memory", "object_store_memory"))
        )
        or "nothing"
        for node in ray.nodes()
        if node.get("Alive")
    ]
    return (
        f"no Ray node took the fine-tuning within RAY_START_TIMEOUT="
        f"{settings.ray_start_timeout:g} s: it asks one node for {asked} (TRAINING_THREADS"
        + (", and a GPU as DEVICE names cuda" if gpus else "")
        + f"); the cluster's nodes have: {'; '.join(sorted(nodes)) or 'none'}. Add a node, lower "
        "TRAINING_THREADS, or train on this machine (TRAINING_ON=local)"
    )
