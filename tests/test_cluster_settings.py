"""The cluster engine's settings and start-up, without a cluster: fast, no Ray processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from ocr_backend.errors import ClusterUnreachable
from ocr_backend.settings import Settings, format_settings_error

ROOT = Path(__file__).resolve().parents[1]


def error_of(**values) -> str:
    with pytest.raises(ValidationError) as caught:
        Settings(**values)
    return format_settings_error(caught.value)


def test_the_pool_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RAY_ADDRESS", "ray-head:6379")
    monkeypatch.setenv("RAY_ACTORS", "2")
    monkeypatch.setenv("RAY_ACTORS_MAX", "8")
    monkeypatch.setenv("RAY_ACTOR_CPUS", "0.5")
    monkeypatch.setenv("RAY_ACTOR_GPUS", "0.25")
    monkeypatch.setenv("RAY_ACTOR_RESOURCES", "accelerator_type:T4=0.001, ocr=1")
    settings = Settings(lang_list="en")
    assert settings.ray_address == "ray-head:6379"
    assert (settings.ray_actors, settings.ray_pool_max) == (2, 8)
    assert (settings.ray_actor_cpus, settings.ray_actor_gpus) == (0.5, 0.25)
    assert settings.ray_actor_resources == {"accelerator_type:T4": 0.001, "ocr": 1.0}


def test_a_fixed_pool_is_its_minimum():
    assert Settings(lang_list="en", ray_actors=3).ray_pool_max == 3


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"ray_address": "http://head:8265"}, "invalid RAY_ADDRESS='http://head:8265': must be"),
        (
            {"ray_address": "auto", "workers": 2},
            "WORKERS=2: each worker process would start its own pool",
        ),
        (
            {"ray_address": "auto", "ray_actors": 4, "ray_actors_max": 2},
            "RAY_ACTORS_MAX=2 is below RAY_ACTORS=4",
        ),
        ({"ray_address": "auto", "ray_actor_gpus": 1.5}, "never 1.5"),
        (
            {"ray_address": "auto", "ray_actor_cpus": 0},
            "Ray would pack every actor on one node",
        ),
        (
            {"ray_address": "auto", "ray_actor_gpus": 1, "device": "cpu"},
            "DEVICE=cpu: unset DEVICE",
        ),
        ({"ray_address": "auto", "device": "cuda"}, "Set RAY_ACTOR_GPUS"),
        ({"ray_actor_resources": "ocr"}, "'ocr' has no amount: write NAME=AMOUNT"),
        ({"ray_actor_resources": "GPU=1"}, "use RAY_ACTOR_CPUS / RAY_ACTOR_GPUS"),
        ({"ray_actor_resources": "ocr=-1"}, "must be above 0"),
        ({"ray_actor_resources": "ocr=lots"}, "the amount must be a number"),
        ({"ray_actors": 0}, "invalid RAY_ACTORS=0"),
    ],
)
def test_a_wrong_pool_setting_says_what_to_change(values: dict, expected: str):
    assert expected in error_of(lang_list="en", **values)


def test_without_ray_address_nothing_of_ray_is_imported(tmp_path: Path):
    """The embedded default: load the engine, build and serve the app, and Ray stays out."""
    script = """
import sys
from fastapi.testclient import TestClient
from ocr_backend.__main__ import main  # every command, as `ocr-backend` imports them
from ocr_backend.api import create_app
from ocr_backend.engine import load_engine
from ocr_backend.ocr.local import LocalEngine
from ocr_backend.settings import Settings

settings = Settings()
assert settings.ray_address is None
engine = load_engine(settings)
assert isinstance(engine, LocalEngine)
with TestClient(create_app(settings, engine=engine)) as client:
    health = client.get("/health").json()
assert health["status"] == "UP" and "degraded" not in health, health
engine.close()
loaded = sorted(name for name in sys.modules if name == "ray" or name.startswith("ray."))
print("ray modules:", loaded)
sys.exit(1 if loaded else 0)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env |= {
        "LANG_LIST": "en",
        "DEVICE": "cpu",
        "MODEL_DIR": str(tmp_path),
        "MODEL_DOWNLOAD": "false",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ray modules: []" in result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_cluster_stops_start_up_with_one_line(tmp_path: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env |= {
        "RAY_ADDRESS": f"127.0.0.1:{port}",
        "LANG_LIST": "en",
        "MODEL_DIR": str(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "ocr_backend"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"ocr-backend: RAY_ADDRESS=127.0.0.1:{port}: nothing answers there (Connection "
        "refused). Start the Ray head (`ray start --head`), fix RAY_ADDRESS, or unset it "
        "to read in this process"
    ]


def test_ray_client_without_its_extra_says_what_to_install(model_dir: Path):
    """`ray://` needs ray[client]; the cluster extra installs plain ray, and says so."""
    from ocr_backend.engine import load_engine

    with socket.create_server(("127.0.0.1", 0)) as listening:
        port = listening.getsockname()[1]
        settings = Settings(
            lang_list="en", model_dir=model_dir, ray_address=f"ray://127.0.0.1:{port}"
        )
        with pytest.raises(ClusterUnreachable, match=r"requires pip package `ray\[client\]`"):
            load_engine(settings)


async def test_without_its_driver_process_the_service_answers_503_and_degraded_at_once(
    caplog: pytest.LogCaptureFixture,
):
    """The driver process's exit, told by hand (tests/test_cluster_head_lost.py kills a real
    head): every read and `ready` is a 503 naming the address, /health's part says why."""
    import time

    from ocr_backend.errors import ClusterUnavailable
    from ocr_backend.ocr.cluster_process import ClusterProcess

    settings = Settings(lang_list="en", ray_address="127.0.0.1:6379", ray_wait_seconds=30)
    engine = ClusterProcess(settings)
    engine._driver_lost(1)
    engine.close()  # no driver to join again: the rejoin stops before its first try
    started = time.monotonic()
    health = engine.health()
    for attempt in (engine.ready(), engine.read(None)):  # type: ignore[arg-type]
        with pytest.raises(ClusterUnavailable) as caught:
            await attempt
        assert "RAY_ADDRESS=127.0.0.1:6379 is lost" in str(caught.value)
        assert "exited with status 1" in str(caught.value) and caught.value.retry_after == 10
    assert time.monotonic() - started < 1  # not RAY_WAIT_SECONDS
    assert health["degraded"] is True and health["cluster"]["actors_up"] == 0
    assert "exited with status 1" in health["cluster"]["lost"]
    (told,) = [r.getMessage() for r in caplog.records if "Lost the Ray cluster" in r.getMessage()]
    assert "RAY_ADDRESS=127.0.0.1:6379" in told and "joining it again every 10 s" in told


def test_training_runs_on_the_cluster_by_default_with_ray_address():
    assert Settings(lang_list="en").trains_on_cluster is False
    assert Settings(lang_list="en", ray_address="ray-head:6379").trains_on_cluster is True
    on_here = Settings(lang_list="en", ray_address="ray-head:6379", training_on=" Local ")
    assert on_here.training_on == "local" and on_here.trains_on_cluster is False


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"training_on": "cluster"}, "TRAINING_ON=cluster runs the fine-tuning as a Ray task"),
        ({"training_on": "gpu"}, "invalid TRAINING_ON='gpu': must be one of local, cluster"),
    ],
)
def test_a_wrong_training_place_says_what_to_change(values: dict, expected: str):
    assert expected in error_of(lang_list="en", **values)


def test_training_on_an_unreachable_cluster_fails_at_once_with_the_reason(tmp_path: Path):
    """Told in /jobs (the progress file) before anything is exported; nothing served."""
    from ocr_backend.training.pipeline import train_project
    from ocr_backend.training.registry import ModelRegistry

    port = free_port()  # nothing listens there
    settings = Settings(
        lang_list="en",
        model_dir=tmp_path,
        label_studio_host="http://127.0.0.1:9",
        label_studio_access_token="unused",
        ray_address=f"127.0.0.1:{port}",
    )
    with pytest.raises(ClusterUnreachable, match="nothing answers there"):
        train_project(settings, 7)
    registry = ModelRegistry(tmp_path, "http://127.0.0.1:9")
    progress = (registry.folder(7) / "progress.json").read_text()
    assert '"state": "failed"' in progress
    assert f"RAY_ADDRESS=127.0.0.1:{port}: nothing answers there" in progress
    assert registry.current(7) is None and not registry.trainings(7)
