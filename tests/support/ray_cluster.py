"""A real multi-node Ray cluster on this machine, for the cluster tests and bench/cluster.py.

A head that runs nothing (`num_cpus=0`) and worker nodes with one CPU each,
every one a separate raylet with its own processes: `ray.cluster_utils.Cluster`.
Only loopback: Ray swaps 127.0.0.1 for the machine's outward address unless
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, so that is set before Ray is imported.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# Ray's processes read these when they start: set them before anything starts one.
RAY_ENVIRONMENT = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}
# A dead node is noticed in about 3 s instead of 13 s or more.
HEALTH_CHECKS = {
    "health_check_period_ms": 1000,
    "health_check_failure_threshold": 3,
    "health_check_initial_delay_ms": 1000,
}
OBJECT_STORE = 80 * 2**20


def prepare_environment() -> None:
    os.environ.update(RAY_ENVIRONMENT)
    # The actors import ocr_backend from this checkout, installed or not.
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(ROOT / "src") not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *paths])


@contextmanager
def ray_cluster(
    workers: list[dict[str, Any]], head_port: int | None = None
) -> Iterator[tuple[Any, list[Any]]]:
    """A head and one worker node per dict of `add_node` arguments, stopped afterwards.

    Yields the cluster and its worker nodes, in the order asked. `head_port`: the
    GCS port of the head (a free one by default), to bring a lost head back.

    Must run in the main thread (Ray installs signal handlers when a node starts).
    """
    prepare_environment()
    from ray.cluster_utils import Cluster

    head: dict[str, Any] = {
        "num_cpus": 0,
        "include_dashboard": False,
        "object_store_memory": OBJECT_STORE,
        "_system_config": HEALTH_CHECKS,
    }
    if head_port is not None:
        head["gcs_server_port"] = head_port
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        yield cluster, [add_worker(cluster, **args) for args in workers]
    finally:
        pids = ray_pids(cluster)
        import ray

        if ray.is_initialized():  # a driver left connected would stop the head's removal
            ray.shutdown()
        cluster.shutdown()
        stop_leftovers(pids)


def add_worker(cluster: Any, **args: Any) -> Any:
    return cluster.add_node(object_store_memory=OBJECT_STORE, **args)


def node_pids(node: Any) -> set[int]:
    return {info.process.pid for infos in node.all_processes.values() for info in infos}


def ray_pids(cluster: Any) -> set[int]:
    """Every process of the cluster's nodes, and their children (the actors' workers)."""
    nodes = [cluster.head_node, *cluster.worker_nodes] if cluster.head_node else []
    roots = set().union(*(node_pids(node) for node in nodes)) if nodes else set()
    return roots | descendants(roots)


def descendants(roots: set[int]) -> set[int]:
    children: dict[int, set[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), set()).add(int(stat.parent.name))
    found: set[int] = set()
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def kill(pids: set[int]) -> None:
    """SIGKILL these processes, by PID (those already gone are skipped)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stop_leftovers(pids: set[int]) -> None:
    """Kill, by PID, whatever of the cluster outlived its shutdown."""
    deadline = time.monotonic() + 5
    alive = {pid for pid in pids if Path(f"/proc/{pid}").exists()}
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = {pid for pid in alive if Path(f"/proc/{pid}").exists()}
    kill(alive)


def listening_addresses(pids: set[int]) -> set[str]:
    """The local addresses the processes listen on (TCP), from /proc."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    addresses = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                addresses.add(hex_address(fields[1].rsplit(":", 1)[0]))
    return addresses


def hex_address(value: str) -> str:
    """/proc/net's little-endian hex address as text (IPv4, or IPv6 with mapped IPv4)."""
    import ipaddress

    raw = bytes.fromhex(value)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(words)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address)
