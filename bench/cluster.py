"""The Ray cluster engine against the in-process engine, side by side in one run.

Starts a real Ray cluster on this machine (a head with no CPUs, worker nodes with
one CPU each) and reads the same pages:
  A. in this process: one EasyOCR reader, one thread, torch on 1 thread
     (exactly what one actor runs);
  B. on the cluster with one worker node: a pool of 1 actor (1 CPU);
  C. with two worker nodes: a pool of 2 actors (1 CPU each).
The pages go through `engine.read` concurrently, as the predictor sends them
(at most actors + 2 in hand). Prints images/s, the ratios C/B (target >= 1.6)
and B/A (target: within 10%), whether the texts are the same, and each Ray
node's RSS (its raylet and processes, the actors included). Usage:
  .venv/bin/python bench/cluster.py [--pages 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT))

from pages import document  # noqa: E402

from ocr_backend.engine import load_engine  # noqa: E402
from ocr_backend.ocr.cluster import ClusterEngine, _one_reader_engine  # noqa: E402
from ocr_backend.settings import Settings  # noqa: E402
from tests.ray_cluster import add_worker, descendants, node_pids, ray_cluster  # noqa: E402


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
    args = parser.parse_args()
    images = [
        np.asarray(document(900, 700, lines=14, seed=seed).convert("RGB"))
        for seed in range(args.pages)
    ]
    model_dir = Path(tempfile.mkdtemp(prefix="bench-cluster-models-"))
    base = {"lang_list": "en", "model_dir": model_dir, "model_download": False}
    print(f"{len(images)} pages of 900x700, 14 lines each")

    # A. in this process, as one actor would read.
    local = _one_reader_engine(Settings(**base, device="cpu"))
    asyncio.run(read_all(local, images[:1]))  # warm, as the actors are after loading
    local_s, local_texts = asyncio.run(read_all(local, images))
    local.close()
    print(f"A. in-process, 1 thread:   {local_s:6.1f} s  {len(images) / local_s:.3f} images/s")

    with ray_cluster([{"num_cpus": 1}]) as (cluster, nodes):
        results = {}
        for label, actors in (("B", 1), ("C", 2)):
            if actors == 2:
                nodes.append(add_worker(cluster, num_cpus=1))
            settings = Settings(**base, ray_address=cluster.address, ray_actors=actors)
            engine = load_engine(settings)
            assert isinstance(engine, ClusterEngine)
            try:
                asyncio.run(read_all(engine, images[:actors]))  # one warm read per actor
                engine.reads_by_node.clear()
                took, texts = asyncio.run(read_all(engine, images))
                per_node = sorted(engine.reads_by_node.values(), reverse=True)
                rss = [node_rss(node) for node in [cluster.head_node, *nodes]]
            finally:
                engine.close()
            results[label] = took
            print(
                f"{label}. Ray, {actors} worker node(s): {took:6.1f} s  "
                f"{len(images) / took:.3f} images/s  reads per node {per_node}  "
                f"same texts as A: {texts == local_texts}"
            )
            print(
                "   RSS (MiB): head "
                + f"{rss[0]:.0f}, "
                + ", ".join(f"worker {i} {mib:.0f}" for i, mib in enumerate(rss[1:], 1))
                + f"; this driver {rss_mib({os.getpid()}):.0f}"
            )

    scaling = results["B"] / results["C"]
    overhead = results["B"] / local_s - 1
    print(f"two worker nodes / one: {scaling:.2f}x (target >= 1.6)")
    print(f"Ray, one node, against in-process: {overhead:+.1%} time (target within 10%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
