"""The service reading on a real multi-node Ray cluster on this machine.

A head that runs nothing and two worker nodes with one CPU each (separate
raylets and processes); the service joins it as a driver, as it would join a
remote cluster with RAY_ADDRESS. Real EasyOCR in every actor, real HTTP for
the images.

The tests share one cluster and run in file order: the GPU-option pool
first (its own actors, let go before the others load), a training run as a
Ray task (while the workers' CPUs are free), a project's weights sent to the
actors, then the batch, the node killed mid-batch, and last the cluster lost.

The service holds its pool in a driver process of its own (`load_engine`:
ocr/cluster_process.py); tests of the pool itself load it in this process
(`ClusterEngine.load`) to look inside it. tests/test_cluster_head_lost.py
loses the head under the service's own process.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ocr_backend.api import create_app
from ocr_backend.engine import load_engine
from ocr_backend.errors import ClusterUnreachable
from ocr_backend.ocr.cluster import ClusterEngine
from ocr_backend.ocr.cluster_process import ClusterProcess
from ocr_backend.settings import Settings
from ocr_backend.training.registry import ModelRegistry
from tests.support.asgi import async_client
from tests.support.drawing import draw_page
from tests.support.image_server import ImageServer
from tests.support.label_studio import OCR_TEMPLATE, drawn_rectangle
from tests.support.label_studio_api import LabelStudioApi
from tests.support.meter_displays import annotation_result, fonts_missing, meter_photo
from tests.support.processes import run_train
from tests.support.ray_cluster import (
    RAY_ENVIRONMENT,
    add_worker,
    listening_addresses,
    ray_cluster,
    ray_pids,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

WORDS = ["ALPHA", "BRAVO", "CHARLIE", "DELTA", "ECHO", "FOXTROT", "GOLF", "HOTEL"]


@pytest.fixture(scope="module")
def cluster():
    """Head (no CPU) + worker 1 (1 CPU) + worker 2 (1 CPU, a fake GPU and a fake accelerator)."""
    workers = [
        {"num_cpus": 1},
        {"num_cpus": 1, "num_gpus": 1, "resources": {"fake_accelerator": 2}},
    ]
    with ray_cluster(workers) as (ray_cluster_, nodes):
        yield ray_cluster_, nodes


def cluster_settings(address: str, model_dir: Path, **changes) -> Settings:
    return Settings(
        **{
            "lang_list": "en",
            "model_dir": model_dir,
            "model_download": False,
            "ray_address": address,
            "ray_actors": 2,
            "ray_wait_seconds": 5,
            "ray_start_timeout": 240,
            **changes,
        }
    )


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory):
    """Eight pages of six lines, one word each, on a real HTTP server: ~1-3 s each to read."""
    server = ImageServer(tmp_path_factory.mktemp("cluster-pages"))
    urls = {
        word: server.put(f"{word}.png", draw_page([f"{word} {n}" for n in range(1, 7)])[0])
        for word in WORDS
    }
    yield server, urls
    server.close()


def predict_body(urls: dict[str, str], project: str = "1.1") -> dict:
    """A /predict of these pages; each test its own project, so the job queue on disk
    (shared through MODEL_DIR) reads them again instead of answering what it read before."""
    tasks = [{"id": i, "data": {"ocr": url}} for i, url in enumerate(urls.values(), start=1)]
    return {"tasks": tasks, "label_config": OCR_TEMPLATE, "project": project}


async def wait_until(condition, limit: float, step: float = 0.1) -> bool:
    """Poll `condition` (the engine's state changes in Ray's threads) until true or `limit` s."""
    for _ in range(int(limit / step)):
        if condition():
            return True
        await asyncio.sleep(step)
    return condition()


def texts_of(result: dict) -> str:
    return " ".join(
        " ".join(item["value"]["text"]) for item in result["result"] if item["type"] == "textarea"
    )


def test_ray_listens_on_loopback_only(cluster):
    ray_cluster_, _ = cluster
    addresses = listening_addresses(ray_pids(ray_cluster_))
    assert addresses and addresses <= {"127.0.0.1"}, addresses


def test_gpu_actor_options_schedule_on_the_node_that_has_them(cluster, model_dir: Path):
    """Half a GPU and a custom resource per actor: both actors land on worker 2, and read."""
    ray_cluster_, (_, gpu_node) = cluster
    settings = cluster_settings(
        ray_cluster_.address,
        model_dir,
        ray_actor_cpus=0,
        ray_actor_gpus=0.5,
        ray_actor_resources="fake_accelerator=1",
    )
    engine = ClusterEngine.load(settings)
    try:
        image = draw_page(["SHARED GPU"])[0]
        import numpy as np

        lines = [asyncio.run(engine.read(np.asarray(image))) for _ in range(2)]
        assert all("SHARED GPU" in " ".join(line.text for line in read) for read in lines)
        assert set(engine.reads_by_node) == {gpu_node.node_id}
        assert engine.health()["cluster"]["actors_up"] == 2
    finally:
        engine.close()


def test_actors_that_fit_nowhere_stop_start_up_with_what_the_cluster_has(cluster, model_dir: Path):
    ray_cluster_, _ = cluster
    settings = cluster_settings(
        ray_cluster_.address, model_dir, ray_actor_gpus=2, ray_start_timeout=3
    )
    started = time.monotonic()
    with pytest.raises(ClusterUnreachable) as caught:
        load_engine(settings)
    assert time.monotonic() - started < 30
    message = str(caught.value)
    assert "only 0 of RAY_ACTORS=2" in message
    assert "GPU 2" in message and "GPU 1" in message and "CPU 2" in message


async def test_the_lifespan_joins_the_cluster_and_a_drawn_region_is_read_there(
    cluster, model_dir: Path, pages
):
    """No engine given: the app loads the pool at start-up, as with RAY_ADDRESS in the env."""
    ray_cluster_, _ = cluster
    server, _ = pages
    image, drawn = draw_page(["SHIPPING LABEL", "Order 4711"], font_size=44, gap=50)
    url = server.put("drawn.png", image)
    left, top, right, bottom = drawn[1].box
    region = drawn_rectangle((left - 8, top - 8, right + 8, bottom + 8), image.size)
    body = predict_body({"drawn": url}) | {"params": {"context": {"result": [region]}}}
    app = create_app(cluster_settings(ray_cluster_.address, model_dir, ray_actors=1))
    async with async_client(app) as (client, services):
        assert isinstance(services.engine, ClusterProcess)
        response = await client.post("/predict", json=body, timeout=120)

        def reads() -> int:  # as the driver process last reported (every 0.5 s)
            return sum(services.engine.reads_by_node.values())

        assert await wait_until(lambda: reads() >= 1, 5)
        await asyncio.sleep(1)
        assert reads() == 1  # read on the pool: the region, not the page
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["results"]
    assert texts_of(prediction) == "Order 4711"


async def test_a_busy_pool_grows_to_its_maximum_and_shrinks_when_idle(
    cluster, model_dir: Path, pages
):
    """RAY_ACTORS=1, RAY_ACTORS_MAX=2: a batch makes it add the second actor, idle lets it go."""
    import numpy as np
    from PIL import Image

    ray_cluster_, (node_1, node_2) = cluster
    server, urls = pages
    settings = cluster_settings(ray_cluster_.address, model_dir, ray_actors=1, ray_actors_max=2)
    engine = ClusterEngine.load(settings)
    try:
        assert engine.threads == 2  # the predictor decodes for the largest pool
        assert engine.health()["cluster"]["actors"] == 1
        images = [
            np.asarray(Image.open(server.root / f"{word}.png").convert("RGB")) for word in WORDS
        ]
        read = await asyncio.gather(*(engine.read(image) for image in images))
        assert [lines[0].text.split()[0] for lines in read] == WORDS
        assert engine.health()["cluster"]["actors"] == 2
        assert await wait_until(lambda: engine.health()["cluster"]["actors_up"] == 2, 240, 1)
        await asyncio.gather(*(engine.read(image) for image in images[:4]))
        assert set(engine.reads_by_node) == {node_1.node_id, node_2.node_id}
        engine.idle_seconds = 1
        assert await wait_until(lambda: engine.health()["cluster"]["actors"] == 1, 30)
        assert engine.health()["degraded"] is False
    finally:
        engine.close()


@pytest.fixture
def label_studio():
    server = LabelStudioApi(storage_url="http://127.0.0.1:9")
    yield server
    server.close()


def meter_project(label_studio: LabelStudioApi, project: int) -> None:
    """Six annotated photos of meter displays, three lines each (as tests/test_training.py)."""
    label_studio.add_project(project, OCR_TEMPLATE)
    for number in range(6):
        photo = meter_photo(seed=2000 + number, lines=3)
        name = f"upload/{project}/m{number}.jpg"
        label_studio.uploads[name] = photo.jpeg
        label_studio.add_task(
            project, {"ocr": f"/data/{name}"}, {"result": annotation_result(photo)}
        )


@pytest.mark.skipif(fonts_missing() is not None, reason=str(fonts_missing()))
def test_training_runs_as_a_ray_task_on_a_worker_node_and_is_promoted(
    cluster, label_studio, tmp_path
):
    """`ocr-backend train` with RAY_ADDRESS: fine-tuned on a worker node (its CPU), the
    weights written into the registry here and served, as an in-process training is."""
    ray_cluster_, nodes = cluster
    meter_project(label_studio, 5)
    settings = {
        "LABEL_STUDIO_HOST": label_studio.host,
        "LABEL_STUDIO_ACCESS_TOKEN": label_studio.personal_access_token,
        "LANG_LIST": "en",
        "MODEL_DIR": str(tmp_path / "models"),
        "MODEL_DOWNLOAD": "false",
        "RAY_ADDRESS": ray_cluster_.address,  # TRAINING_ON unset: the cluster
        "RAY_START_TIMEOUT": "120",
        **RAY_ENVIRONMENT,
        "TRAINING_THREADS": "1",
        "TRAINING_EPOCHS": "2",
        "TRAINING_VARIANTS": "1",  # a third of the work; still promoted (0.516 -> 0.242)
        "LOG_LEVEL": "INFO",
    }
    done = run_train(5, settings, timeout_s=900)
    assert done.returncode == 0, done.stderr[-3000:]
    workers = {node.node_id[:12] for node in nodes}
    ran_on = [w for w in workers if f"fine-tuning on Ray node {w}" in done.stderr]
    assert len(ran_on) == 1, done.stderr[-3000:]  # a worker node, not the driver's machine
    assert "epoch 2/2" in done.stderr  # the node's progress reached the progress file
    registry = ModelRegistry(tmp_path / "models", label_studio.host)
    figures = registry.trainings(5)[0]
    assert (
        figures["trained_on"] == "cluster" and figures["variants"] == 1
    )  # the settings went along
    assert figures["cer_after"] < figures["cer_before"], figures
    served = registry.current(5)
    assert served is not None and served.version.endswith("-project5-training1")
    assert f"serving {served.version}" in done.stdout
    progress = json.loads((registry.folder(5) / "progress.json").read_text())
    assert progress["state"] == "promoted" and progress["version"] == served.version
    assert sorted(p.name for p in registry.folder(5).iterdir()) == [
        "current.json",
        "progress.json",
        "training-1.json",
        "training-1.pth",
    ]


def test_a_training_no_node_has_room_for_fails_with_what_it_asks(cluster, label_studio, tmp_path):
    """Two CPUs asked (TRAINING_THREADS=2), one per node: told in RAY_START_TIMEOUT, no hang."""
    from ocr_backend.training.pipeline import train_project

    ray_cluster_, _ = cluster
    meter_project(label_studio, 6)
    settings = Settings(
        lang_list="en",
        model_dir=tmp_path,
        model_download=False,
        label_studio_host=label_studio.host,
        label_studio_access_token=label_studio.personal_access_token,
        ray_address=ray_cluster_.address,
        ray_start_timeout=3,
        training_threads=2,
    )
    started = time.monotonic()
    with pytest.raises(ClusterUnreachable, match="no Ray node took the fine-tuning") as caught:
        train_project(settings, 6, epochs=1)
    assert time.monotonic() - started < 30
    message = str(caught.value)
    assert "it asks one node for CPU 2" in message
    assert (
        "the cluster's nodes have: CPU 1; CPU 1, GPU 1, fake_accelerator 2; nothing" in message
    ), message
    registry = ModelRegistry(tmp_path, label_studio.host)
    progress = json.loads((registry.folder(6) / "progress.json").read_text())
    assert progress["state"] == "failed" and "no Ray node took" in progress["step"]
    assert registry.current(6) is None


@pytest.fixture(scope="module")
def engine(cluster, model_dir: Path):
    ray_cluster_, _ = cluster
    engine = ClusterEngine.load(cluster_settings(ray_cluster_.address, model_dir))
    yield engine
    engine.close()


def reads_x_only(stock: Path, out: Path) -> Path:
    """Recogniser weights that read every line as "X": a project model whose use shows."""
    import torch

    from ocr_backend.training.alphabet import recogniser_model

    state = torch.load(stock, map_location="cpu", weights_only=True)
    bias = torch.full_like(state["module.Prediction.bias"], -10.0)
    bias[recogniser_model(("en",)).characters.index("X") + 1] = 10.0
    state["module.Prediction.weight"] = torch.zeros_like(state["module.Prediction.weight"])
    state["module.Prediction.bias"] = bias
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out)
    return out


async def test_actors_read_with_project_weights_sent_through_the_object_store(
    cluster, engine, tmp_path: Path
):
    """The service's weights file is deleted after its first read: the actor that never
    read with it reads with it all the same, from the bytes the object store brought."""
    from ocr_backend.ocr.weights import bundled_model_dir

    stock = bundled_model_dir()
    assert stock is not None
    weights = reads_x_only(stock / "english_g2.pth", tmp_path / "trained" / "training-1.pth")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    page = np.asarray(draw_page(["HELLO WORLD"])[0])
    _, nodes = cluster
    engine.reads_by_node.clear()
    try:
        assert [line.text for line in await engine.read(page)] == ["HELLO WORLD"]
        assert [line.text for line in await engine.read(page, weights)] == ["X"]
        weights.unlink()  # the service's file is gone: no actor may need it from here on
        both = await asyncio.gather(engine.read(page, weights), engine.read(page, weights))
        assert [[line.text for line in lines] for lines in both] == [["X"], ["X"]]
        assert set(engine.reads_by_node) == {node.node_id for node in nodes}
        # Each actor keeps the weights in a file of its own, named by their digest.
        kept = list((Path(tempfile.gettempdir()) / "ocr-backend-weights").glob(f"*/{digest}.pth"))
        assert len(kept) == 2, kept
        assert [line.text for line in await engine.read(page)] == ["HELLO WORLD"]
    finally:
        engine.reads_by_node.clear()  # the next tests count their own reads


async def test_a_batch_spreads_over_both_worker_nodes(cluster, engine, pages):
    _, (node_1, node_2) = cluster
    server, urls = pages
    settings = engine.settings
    app = create_app(settings, engine=engine)
    async with async_client(app) as (client, services):
        assert services.predictor.images_in_hand == 4  # 2 actors + 2 decoded ahead
        health = (await client.get("/health")).json()
        assert health["status"] == "UP" and health["degraded"] is False
        assert health["cluster"]["actors_up"] == 2 and health["cluster"]["nodes_up"] == 2
        started = time.perf_counter()
        response = await client.post("/predict", json=predict_body(urls), timeout=300)
        took = time.perf_counter() - started
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [texts_of(r).split()[0] for r in results] == WORDS
    for word, result in zip(WORDS, results, strict=True):
        assert f"{word} 6" in texts_of(result)
    reads = engine.reads_by_node
    print(f"8 pages on 2 worker nodes in {took:.1f} s; reads per node: {dict(reads)}")
    assert set(reads) == {node_1.node_id, node_2.node_id}
    assert min(reads.values()) >= 3, reads  # a fair share: 4 each, give or take one


async def test_a_node_killed_mid_batch_costs_no_task(cluster, engine, pages):
    """Worker 1 dies with images in hand: they are read on worker 2, each task answered once."""
    ray_cluster_, (node_1, node_2) = cluster
    server, urls = pages
    engine.reads_by_node.clear()
    server.requests.clear()
    redispatched = engine.redispatched
    app = create_app(engine.settings, engine=engine)
    async with async_client(app) as (client, _):
        predict = asyncio.ensure_future(
            client.post("/predict", json=predict_body(urls, project="2.1"), timeout=300)
        )
        await wait_until(lambda: sum(engine.reads_by_node.values()) >= 3 or predict.done(), 120)
        in_hand = engine.health()["cluster"]["images_in_hand"]
        ray_cluster_.remove_node(node_1, allow_graceful=False)  # its raylet and actor killed
        killed_at = sum(engine.reads_by_node.values())
        response = await predict
        health = (await client.get("/health")).json()

        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert len(results) == len(WORDS)
        assert [texts_of(r).split()[0] for r in results] == WORDS
        assert not any(r.get("error") for r in results)
        # Each image was fetched once: a re-dispatched one is not fetched again.
        fetched = Counter(path for path, _ in server.requests)
        assert set(fetched.values()) == {1} and len(fetched) == len(WORDS)
        print(
            f"killed worker 1 after {killed_at} of 8 reads with {in_hand} images in hand; "
            f"re-dispatched {engine.redispatched - redispatched}; reads: {dict(engine.reads_by_node)}"
        )
        assert engine.redispatched > redispatched
        assert engine.reads_by_node[node_2.node_id] >= len(WORDS) - killed_at

        assert health["status"] == "UP" and health["degraded"] is True
        assert health["cluster"]["actors_up"] == 1
        metrics = (await client.get("/metrics")).text
        assert "ocr_backend_cluster_actors_up 1.0" in metrics
        assert "ocr_backend_cluster_redispatched_images_total" in metrics

        # A new node with room: Ray restarts the lost actor there, the pool takes it back.
        add_worker(ray_cluster_, num_cpus=1)
        assert await wait_until(lambda: not engine.health()["degraded"], 240, step=1)
        health = (await client.get("/health")).json()
        assert health["degraded"] is False and health["cluster"]["actors_up"] == 2


async def test_a_lost_cluster_answers_503_not_a_hang(cluster, engine, pages):
    ray_cluster_, _ = cluster
    _, urls = pages
    for node in list(ray_cluster_.worker_nodes):
        ray_cluster_.remove_node(node, allow_graceful=False)
    app = create_app(engine.settings, engine=engine)
    async with async_client(app) as (client, _):
        assert await wait_until(lambda: not engine.health()["cluster"]["actors_up"], 60)
        started = time.monotonic()
        body = predict_body(dict(list(urls.items())[:1]), project="3.1")
        response = await client.post("/predict", json=body, timeout=60)
        took = time.monotonic() - started
        health = (await client.get("/health")).json()
    assert response.status_code == 503, response.text
    assert "RAY_WAIT_SECONDS" in response.json()["detail"]
    assert response.headers["Retry-After"] == "5"
    assert took < 15  # RAY_WAIT_SECONDS=5, not a hang
    assert health["status"] == "UP" and health["degraded"] is True
    assert health["cluster"]["actors_up"] == 0
