"""The Ray cluster engine against the in-process engine, side by side in one run.

Starts a real Ray cluster on this machine (a head with no CPUs, two worker
nodes) and reads the same pages, in interleaved rounds so that every path sees
the same load on the machine:
  A. in this process: one EasyOCR reader, one thread, torch on 1 thread
     (exactly what one actor runs);
  B. a pool of 1 actor (1 CPU), on worker node 1: the cluster with one worker;
  C. a pool of 2 actors (1 CPU each), one on each worker node.
Only one path reads at a time (each node declares 2 logical CPUs so that both
pools can stay loaded; each actor still runs torch on one thread). The pages go
through `engine.read` concurrently, as the predictor sends them (at most
actors + 2 in hand). Prints images/s per round and the medians, the ratios C/B
(target >= 1.6) and B/A (target: within 10%), whether the texts are the same,
and each Ray node's RSS (its raylet and processes, the actors included).
On a machine with fewer free cores than actors, C cannot beat B: check `uptime`.
Usage:
  .venv/bin/python -m bench.cluster [--pages 8] [--rounds 2]   (from the repository root)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.pages import document
from ocr_backend.ocr.cluster import ClusterEngine
from ocr_backend.ocr.local import LocalEngine
from ocr_backend.settings import Settings
from tests.support.ray_cluster import descendants, node_pids, ray_cluster


def rss_mib(pids: set[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def node_rss(node) -> float:
    roots = node_pids(node)
    return rss_mib(roots | descendants(roots))


async def read_all(engine, images: list[np.ndarray]) -> tuple[float, list[str]]:
    """Seconds to read every image, as the predictor would send them; the texts read."""
    slots = asyncio.Semaphore(engine.threads + 2)

    async def one(image: np.ndarray) -> str:
        async with slots:
            return " ".join(line.text for line in await engine.read(image))

    started = time.perf_counter()
    texts = await asyncio.gather(*(one(image) for image in images))
    return time.perf_counter() - started, list(texts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    images = [
        np.asarray(document(900, 700, lines=14, seed=seed).convert("RGB"))
        for seed in range(args.pages)
    ]
    model_dir = Path(tempfile.mkdtemp(prefix="bench-cluster-models-"))
    base = {"lang_list": "en", "model_dir": model_dir, "model_download": False}
    print(f"{len(images)} pages of 900x700, 14 lines each; {os.cpu_count()} cores here")

    workers = [{"num_cpus": 2, "resources": {"node1": 1}}, {"num_cpus": 2}]
    local = Settings(**base, device="cpu")
    with ray_cluster(workers) as (cluster, nodes):
        engines = {
            # In this process, as one actor reads: one thread, torch on the actor's CPUs.
            "A": LocalEngine.load(
                local, threads=1, torch_threads=max(1, int(local.ray_actor_cpus))
            ),
            # The pool in this process (the service holds it in a driver process of its own).
            "B": ClusterEngine.load(
                Settings(
                    **base,
                    ray_address=cluster.address,
                    ray_actors=1,
                    ray_actor_resources="node1=1",
                )
            ),
        }
        engines["C"] = ClusterEngine.load(
            Settings(**base, ray_address=cluster.address, ray_actors=2)
        )
        try:
            for engine in engines.values():  # one warm read per reader
                asyncio.run(read_all(engine, images[: engine.threads]))
            seconds: dict[str, list[float]] = {label: [] for label in engines}
            texts: dict[str, list[str]] = {}
            for round_ in range(1, args.rounds + 1):
                for label, engine in engines.items():
                    if isinstance(engine, ClusterEngine):
                        engine.reads_by_node.clear()
                    took, texts[label] = asyncio.run(read_all(engine, images))
                    seconds[label].append(took)
                    nodes_read = (
                        sorted(engine.reads_by_node.values(), reverse=True)
                        if isinstance(engine, ClusterEngine)
                        else "-"
                    )
                    print(
                        f"round {round_} {label}: {took:6.1f} s  {len(images) / took:.3f} "
                        f"images/s  reads per node {nodes_read}  (load {os.getloadavg()[0]:.1f})"
                    )
            rss = [node_rss(node) for node in [cluster.head_node, *nodes]]
        finally:
            for engine in engines.values():
                engine.close()

    median = {label: statistics.median(values) for label, values in seconds.items()}
    print(
        "RSS (MiB), both pools loaded: head "
        + f"{rss[0]:.0f}, "
        + ", ".join(f"worker {i} {mib:.0f}" for i, mib in enumerate(rss[1:], 1))
        + f"; this driver (in-process reader included) {rss_mib({os.getpid()}):.0f}"
    )
    print(f"same texts on every path: {texts['A'] == texts['B'] == texts['C']}")
    for label, name in (("A", "in-process"), ("B", "Ray, 1 node"), ("C", "Ray, 2 nodes")):
        print(f"median {label} {name:13s} {len(images) / median[label]:.3f} images/s")
    pairs = list(zip(seconds["B"], seconds["C"], seconds["A"], strict=True))
    print(
        f"two worker nodes / one: {median['B'] / median['C']:.2f}x (target >= 1.6); per round "
        + ", ".join(f"{b / c:.2f}x" for b, c, _ in pairs)
    )
    print(
        f"Ray, one node, against in-process: {median['B'] / median['A'] - 1:+.1%} time "
        "(target within 10%); per round " + ", ".join(f"{b / a - 1:+.1%}" for b, _, a in pairs)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
