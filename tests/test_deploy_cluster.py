"""Checks of the cluster deployment files that need no container engine or Kubernetes.

- compose.cluster.yaml against the Compose Specification (check-jsonschema's copy);
- deploy/k8s/backend.yaml against Kubernetes' own schemas (kubernetes-validate);
- deploy/k8s/raycluster.yaml against a trimmed RayCluster schema kept in the repo
  (deploy/k8s/schemas/: no package ships KubeRay's), its pod templates against
  Kubernetes' PodTemplate schema;
- and that the pieces fit: one image with Ray in it, the backend joining the head's
  address, its settings valid, its probes on /health.
"""

from __future__ import annotations

import copy
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose.cluster.yaml"
K8S = ROOT / "deploy" / "k8s"
RAYCLUSTER_SCHEMA = K8S / "schemas" / "raycluster-ray.io-v1.json"
KUBERNETES_VERSION = "1.32.0"
PORT = 9090


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def check_jsonschema(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def settings_from(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    """The Settings the backend would build from this environment (compose defaults applied)."""
    from ocr_backend.settings import Settings

    for name in os.environ:
        if (
            name.startswith("RAY_")
            or name in Settings.model_fields
            or name.lower() in (Settings.model_fields)
        ):
            monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        value = str(value)
        if value.startswith("${") and ":-" in value:  # ${VAR:-default}: the default
            value = value.split(":-", 1)[1].rstrip("}")
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MODEL_DIR", "/tmp/models-not-read")  # noqa: S108 - never touched
    return Settings()


# --- compose.cluster.yaml -----------------------------------------------------


def test_cluster_compose_follows_the_compose_specification():
    result = check_jsonschema("--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_cluster_compose_check_catches_mistakes(tmp_path: Path):
    broken = compose()
    broken["services"]["ray-worker"]["comand"] = ["ray", "start"]
    broken["services"]["ray-head"]["shm_size"] = ["1gb"]
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    result = check_jsonschema("--builtin-schema", "vendor.compose-spec", str(path))
    assert result.returncode == 1
    assert "comand" in result.stdout and "shm_size" in result.stdout


def test_head_workers_and_backend_share_one_image_with_ray():
    services = compose()["services"]
    assert set(services) == {"ray-head", "ray-worker", "ocr-backend"}
    for service in services.values():
        assert service["build"] == {"context": ".", "args": {"EXTRAS": "cluster"}}
        assert service["image"] == "ocr-backend:cluster"
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert 'ARG EXTRAS=""' in dockerfile and "optional-dependencies'][e]" in dockerfile
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(pin.startswith("ray==") for pin in extras["cluster"])


def test_workers_and_backend_join_the_head_and_can_be_scaled():
    services = compose()["services"]
    head = services["ray-head"]["command"]
    assert head[:3] == ["ray", "start", "--head"] and "--port=6379" in head
    assert "--num-cpus=0" in head  # actors go to the workers
    worker = services["ray-worker"]
    assert "--address=ray-head:6379" in worker["command"] and "--block" in worker["command"]
    # `--scale ray-worker=N` needs no fixed name or host port on the worker.
    assert "container_name" not in worker and "ports" not in worker
    backend = services["ocr-backend"]["command"]
    assert backend[:2] == ["sh", "-c"]
    joined, _, then = backend[2].partition(" && ")
    assert shlex.split(joined) == ["ray", "start", "--address=ray-head:6379", "--num-cpus=0"]
    assert then == "exec ocr-backend"


def test_cluster_compose_gives_the_backend_valid_cluster_settings(
    monkeypatch: pytest.MonkeyPatch,
):
    backend = compose()["services"]["ocr-backend"]
    settings = settings_from(backend["environment"], monkeypatch)
    assert settings.ray_address == "auto" and settings.workers == 1
    assert settings.ray_actors == 2 and settings.ray_actor_cpus == 1
    assert backend["ports"] == [f"${{PORT:-{PORT}}}:{PORT}"]


# --- deploy/k8s ----------------------------------------------------------------


def kubernetes_errors(resource: dict[str, Any]) -> str | None:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return exc.message
    return None


def backend_resources() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in load_all(K8S / "backend.yaml")}


def raycluster() -> dict[str, Any]:
    (cluster,) = load_all(K8S / "raycluster.yaml")
    return cluster


def pod_templates(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    spec = cluster["spec"]
    groups = [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]
    return [group["template"] for group in groups]


def test_backend_manifests_follow_the_kubernetes_schemas():
    resources = backend_resources()
    assert set(resources) == {"Deployment", "Service"}
    for resource in resources.values():
        assert kubernetes_errors(resource) is None


def test_kubernetes_check_catches_mistakes():
    deployment = copy.deepcopy(backend_resources()["Deployment"])
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    container["readinesProbe"] = container.pop("readinessProbe")
    assert "readinesProbe" in (kubernetes_errors(deployment) or "")


def test_raycluster_follows_the_kuberay_schema_and_its_pods_kubernetes():
    result = check_jsonschema("--schemafile", str(RAYCLUSTER_SCHEMA), str(K8S / "raycluster.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    for template in pod_templates(raycluster()):
        pod_template = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": "t"},
            "template": template,
        }
        assert kubernetes_errors(pod_template) is None


def test_raycluster_check_catches_mistakes(tmp_path: Path):
    broken = raycluster()
    broken["spec"]["workerGroupSpecs"][0]["maxReplica"] = 3
    broken["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0  # must be a string
    path = tmp_path / "raycluster.yaml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    result = check_jsonschema("--schemafile", str(RAYCLUSTER_SCHEMA), str(path))
    assert result.returncode == 1
    assert "maxReplica" in result.stdout and "num-cpus" in result.stdout
    template = pod_templates(raycluster())[0]
    (container,) = template["spec"]["containers"]
    container["resource"] = container.pop("resources")
    pod_template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}}
    assert "'resource' was unexpected" in (
        kubernetes_errors(pod_template | {"template": template}) or ""
    )


def test_the_backend_joins_the_rayclusters_head_and_reads_on_its_workers(
    monkeypatch: pytest.MonkeyPatch,
):
    cluster = raycluster()
    head_service = f"{cluster['metadata']['name']}-head-svc"  # the Service KubeRay makes
    deployment = backend_resources()["Deployment"]
    assert deployment["spec"]["replicas"] == 1
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    joined, _, then = container["command"][2].partition(" && ")
    assert f"--address={head_service}:6379" in shlex.split(joined)
    assert then == "exec ocr-backend"
    environment = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    settings = settings_from(environment, monkeypatch)
    assert settings.ray_address == "auto"
    assert (settings.ray_actors, settings.ray_pool_max) == (2, 20)
    # Each worker pod of the CPU group holds whole actors of RAY_ACTOR_CPUS.
    cpu_group = cluster["spec"]["workerGroupSpecs"][0]
    (worker,) = cpu_group["template"]["spec"]["containers"]
    assert float(worker["resources"]["limits"]["cpu"]) >= settings.ray_actor_cpus
    assert cpu_group["maxReplicas"] >= settings.ray_pool_max * settings.ray_actor_cpus
    assert cluster["spec"]["rayVersion"] == "2.60.0"
    assert cluster["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"


def test_the_backends_probes_ask_health_on_its_port():
    resources = backend_resources()
    (container,) = resources["Deployment"]["spec"]["template"]["spec"]["containers"]
    (port,) = container["ports"]
    assert port == {"name": "http", "containerPort": PORT}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    service = resources["Service"]
    assert service["spec"]["selector"] == resources["Deployment"]["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [{"name": "http", "port": PORT, "targetPort": "http"}]
