"""Who may write into Label Studio, and each result written exactly once under faults.

Real EasyOCR, the real queue file on disk, and a small real HTTP server on
127.0.0.1 that speaks Label Studio's token, task and prediction API
(tests/support/label_studio_server.py). Each test reproduces one way a
result went to the wrong Label Studio, the wrong task, twice, or nowhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from rich.console import Console

from ocr_backend.api import create_app
from ocr_backend.jobs import write_back
from ocr_backend.jobs.progress import counts
from ocr_backend.jobs.store import Entry, JobStore
from ocr_backend.priority import Priority
from ocr_backend.settings import Settings
from tests.support.asgi import async_client
from tests.support.drawing import draw_page
from tests.support.label_studio import OCR_TEMPLATE
from tests.support.label_studio_server import LabelStudioWithPredictions
from tests.support.processes import free_port
from tests.support.settings import changed

pytestmark = pytest.mark.slow  # pages read in the background, servers on 127.0.0.1

PROJECT = "7.1763892800"
AUTH = ("operator", "s3cret-pass")


@pytest.fixture
def label_studio():
    server = LabelStudioWithPredictions(storage_url="http://127.0.0.1:9")
    yield server
    server.close()


@pytest.fixture
def fast_retries(monkeypatch):
    """Write retries after a tenth of a second instead of a minute, so a test sees several."""
    monkeypatch.setattr(write_back, "WRITE_RETRY_S", 0.1)


def one_line_pages(image_server, prefix: str, count: int) -> list[str]:
    return [
        image_server.put(f"{prefix}-{i}.png", draw_page([f"{prefix.upper()} TASK {i}"])[0])
        for i in range(count)
    ]


def tasks_in(label_studio, urls: list[str], first_id: int = 1) -> list[dict]:
    """The tasks, as Label Studio holds them and as it sends them in /predict."""
    return [label_studio.add_task(first_id + index, {"ocr": url}) for index, url in enumerate(urls)]


def body(tasks: list[dict], project: str | None = PROJECT) -> dict:
    return {"tasks": tasks, "project": project, "label_config": OCR_TEMPLATE}


def writing_to(settings: Settings, label_studio, model_dir: Path, **changes: Any) -> Settings:
    """Settings that write to `label_studio`; by default everything is read in the
    background and written (PREDICT_DEADLINE 0.05 s)."""
    return changed(
        settings,
        model_dir=model_dir,
        label_studio_host=label_studio.host,
        label_studio_access_token=label_studio.personal_access_token,
        **{"predict_deadline": 0.05, **changes},
    )


def texts(prediction: dict) -> set[str]:
    return {item["value"]["text"][0] for item in prediction["result"] if item["type"] == "textarea"}


async def until(check: Callable[[], Any], within: float = 60.0, step: float = 0.2) -> Any:
    started = time.monotonic()
    while time.monotonic() - started < within:
        value = check()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        await asyncio.sleep(step)
    return None


async def counted(services, *, states=("done",), deliveries=None) -> int:
    store = services.job_store
    return sum(
        count.tasks
        for count in await store.run(counts, store, 0.0)
        if count.state in states and (deliveries is None or count.delivery in deliveries)
    )


async def read(services, count: int) -> bool:
    return await counted(services) >= count


async def delivered(services, count: int) -> bool:
    return await counted(services, deliveries=("written", "answered")) >= count


# -- 1. two services, one MODEL_DIR ------------------------------------------------------


async def test_two_services_sharing_a_model_dir_write_only_into_their_own_label_studio(
    settings, engine, image_server, tmp_path
):
    mine, theirs = (LabelStudioWithPredictions(storage_url="http://127.0.0.1:9") for _ in "ab")
    try:
        # The same task ids in both: each service's tasks are its own Label Studio's.
        b_tasks = tasks_in(theirs, one_line_pages(image_server, "bee", 4))
        tasks_in(mine, one_line_pages(image_server, "ay", 4))
        service_a = create_app(writing_to(settings, mine, tmp_path), engine=engine)
        service_b = create_app(writing_to(settings, theirs, tmp_path), engine=engine)
        # B queues its tasks and stops before it gets to them; A, on the same MODEL_DIR,
        # starts first; then B comes back.
        async with async_client(service_b) as (client_b, _):
            await client_b.post("/predict", json=body(b_tasks), timeout=60)
        async with async_client(service_a) as (_, services_a):
            await asyncio.sleep(2.0)
            async with async_client(service_b):
                await until(lambda: len(mine.predictions) + len(theirs.predictions) >= 4, 120)
                await asyncio.sleep(1.0)
        written_into_a = len(mine.predictions)
        assert written_into_a == 0, f"{written_into_a} of B's 4 tasks written into A"
        assert sorted(p["task"] for p in theirs.predictions) == [1, 2, 3, 4]
        for prediction in theirs.predictions:
            assert any(text.startswith("BEE TASK") for text in texts(prediction))
    finally:
        mine.close()
        theirs.close()


# -- 2. an anonymous /predict names a task and serves its own image ------------------------


async def test_an_anonymous_predict_cannot_write_text_of_its_choosing_into_a_task(
    settings, engine, image_server, label_studio, tmp_path
):
    (real,) = one_line_pages(image_server, "genuine", 1)
    label_studio.add_task(777001, {"ocr": real})
    forged = image_server.put("forged.png", draw_page(["INJECTED"])[0])
    attack = {"id": 777001, "data": {"ocr": forged}, "project": 7}
    configured = writing_to(settings, label_studio, tmp_path)
    async with async_client(create_app(configured, engine=engine)) as (client, services):
        await client.post("/predict", json=body([attack]), timeout=60)
        await until(lambda: label_studio.predictions_of(777001), within=60)
        await until(lambda: delivered(services, 1), within=30)
    written = [text for p in label_studio.predictions_of(777001) for text in texts(p)]
    assert not any("INJECTED" in text for text in written), written
    # Label Studio's own data is what gets written.
    assert any(text.startswith("GENUINE TASK") for text in written), written


# -- 3. a later /setup does not move write-back ------------------------------------------------


async def test_a_later_setup_does_not_redirect_results_already_queued(
    settings, engine, image_server, label_studio, tmp_path, fast_retries
):
    attacker = LabelStudioWithPredictions(storage_url="http://127.0.0.1:9")
    try:
        tasks = tasks_in(label_studio, one_line_pages(image_server, "queued", 3))
        # No LABEL_STUDIO_HOST: the host and token come from /setup.
        configured = changed(settings, model_dir=tmp_path, predict_deadline=0.05)
        legit = {
            "project": PROJECT,
            "schema": OCR_TEMPLATE,
            "hostname": label_studio.host,
            "access_token": label_studio.legacy_key,
        }
        hostile = {**legit, "hostname": attacker.host, "access_token": attacker.legacy_key}
        async with async_client(create_app(configured, engine=engine)) as (client, services):
            assert (await client.post("/setup", json=legit)).status_code == 200
            label_studio.refuse_writes = True  # the results wait, read, to be written
            await client.post("/predict", json=body(tasks), timeout=60)
            assert await until(lambda: read(services, 3), within=120)
            assert (await client.post("/setup", json=hostile)).status_code == 200
            label_studio.refuse_writes = False
            await until(lambda: len(attacker.predictions) >= 3, within=10)
            assert attacker.predictions == [], "results went to the host of a later /setup"
            # Label Studio's own /setup (its project settings opened again) lets them go.
            assert (await client.post("/setup", json=legit)).status_code == 200
            await until(lambda: len(label_studio.predictions) >= 3, within=60)
        assert attacker.predictions == []
        assert sorted(p["task"] for p in label_studio.predictions) == [1, 2, 3]
    finally:
        attacker.close()


# -- 4. what an anonymous GET /jobs shows -------------------------------------------------------


async def test_jobs_shows_an_anonymous_caller_counts_only(
    settings, engine, image_server, label_studio, tmp_path
):
    missing = image_server.url("private-folder/scan-0001.png")  # 404: a failing task
    task = label_studio.add_task(1, {"ocr": missing})
    configured = writing_to(settings, label_studio, tmp_path, predict_deadline=30)
    async with async_client(create_app(configured, engine=engine)) as (client, _):
        await client.post("/predict", json=body([task]), timeout=60)
        anonymous = await client.get("/jobs")
    assert anonymous.status_code == 200
    shown = anonymous.text
    for secret in ("7.1763892800", "private-folder", label_studio.host, "127.0.0.1"):
        assert secret not in shown, (secret, shown)
    (job,) = anonymous.json()["jobs"]
    assert job["failed"] == 1 and job["total"] == 1
    # With basic auth on, the operator sees the details.
    with_auth = changed(configured, basic_auth_user=AUTH[0], basic_auth_pass=AUTH[1])
    async with async_client(create_app(with_auth, engine=engine)) as (client, _):
        (job,) = (await client.get("/jobs", auth=AUTH)).json()["jobs"]
    assert job["project"] == PROJECT and "private-folder" in job["failure_examples"][0]


# -- 5. `ocr-backend annotate` and the service at once -------------------------------------------


async def test_annotate_and_the_service_never_both_write_one_task(
    settings, engine, image_server, label_studio, tmp_path
):
    from ocr_backend.commands.annotate import annotate

    tasks = tasks_in(label_studio, one_line_pages(image_server, "both", 6))
    label_studio.label_configs[7] = OCR_TEMPLATE
    configured = writing_to(settings, label_studio, tmp_path)
    async with async_client(create_app(configured, engine=engine)) as (client, services):
        asked = asyncio.create_task(client.post("/predict", json=body(tasks), timeout=60))
        summary = await annotate(configured, engine, 7, Console(quiet=True))
        await asked
        await until(lambda: all(label_studio.predictions_of(t["id"]) for t in tasks), 120)
        await asyncio.sleep(2.0)  # a second write would land now
    per_task = {t["id"]: len(label_studio.predictions_of(t["id"])) for t in tasks}
    assert per_task == {t["id"]: 1 for t in tasks}, (per_task, summary)


# -- 6. a write Label Studio stored but answered late ---------------------------------------------


async def test_a_write_answered_after_the_timeout_is_not_written_again(
    settings, engine, image_server, label_studio, tmp_path, fast_retries
):
    tasks = tasks_in(label_studio, one_line_pages(image_server, "late", 2))
    label_studio.write_delay = 1.5  # stored at once, answered after FETCH_TIMEOUT
    configured = writing_to(settings, label_studio, tmp_path, fetch_timeout=0.5)
    async with async_client(create_app(configured, engine=engine)) as (client, services):
        await client.post("/predict", json=body(tasks), timeout=60)
        # Checked, found, and marked written (a blind retry would store another each time).
        settled = await until(lambda: delivered(services, 2), within=180)
        await asyncio.sleep(1.0)
    per_task = [len(label_studio.predictions_of(t["id"])) for t in tasks]
    assert per_task == [1, 1], per_task
    assert settled


# -- 7. a failed check after a killed write ----------------------------------------------------------


async def test_a_failed_check_after_a_killed_write_keeps_the_write_unsure(
    settings, engine, label_studio, tmp_path, fast_retries
):
    task = label_studio.add_task(5, {"ocr": "http://127.0.0.1:9/never-fetched.png"})
    configured = writing_to(settings, label_studio, tmp_path)
    # A process claimed the write, Label Studio stored it, and the process was killed
    # before it heard the answer.
    dead = JobStore(tmp_path / "jobs", owner="somewhere:999999:dead", scope=label_studio.host)
    entry = Entry("killed", PROJECT, 7, 5, "v1", "c", task)
    result = [{"type": "textarea", "value": {"text": ["KILLED"]}}]
    await dead.run(dead.submit, [entry], {"c": OCR_TEMPLATE}, Priority.BULK, 0.0)
    assert await dead.run(dead.claim_next, False) is not None
    await dead.run(dead.finish, "killed", result, 0.9)
    assert len(await dead.run(dead.claim_writes, 1)) == 1
    label_studio.predictions.append(
        {"id": 1, "task": 5, "result": result, "score": 0.9, "model_version": "v1"}
    )
    dead.close()
    label_studio.failing_checks = 1  # the first check after the restart fails
    async with async_client(create_app(configured, engine=engine)) as (_, services):
        twice = await until(lambda: len(label_studio.predictions_of(5)) > 1, within=10)
        settled = await until(lambda: delivered(services, 1), within=10)
    assert not twice, "written blindly after a failed check"
    assert settled


# -- 8. results read in time, the connection gone ------------------------------------------------------


@contextlib.asynccontextmanager
async def served(app) -> AsyncIterator[str]:
    """`app` behind a real uvicorn on 127.0.0.1, in a thread: a client can hang up on it."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as probe:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if (await probe.get(f"{url}/health")).status_code == 200:
                    break
            await asyncio.sleep(0.1)
    try:
        yield url
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 60)


async def test_results_read_for_a_client_that_hung_up_are_written(
    settings, engine, image_server, label_studio, tmp_path
):
    urls = one_line_pages(image_server, "hung", 2)
    for index, url in enumerate(urls):  # uploads: fetched from Label Studio, slowly
        name = f"upload/7/hung-{index}.png"
        label_studio.uploads[name] = (image_server.root / Path(url).name).read_bytes()
    tasks = [
        label_studio.add_task(i + 1, {"ocr": f"/data/upload/7/hung-{i}.png"}) for i in range(2)
    ]
    label_studio.delay = 1.5  # each image takes 1.5 s to come
    configured = writing_to(settings, label_studio, tmp_path, predict_deadline=8.0)
    async with served(create_app(configured, engine=engine)) as url:
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.ReadTimeout):  # Label Studio (or a proxy) gives up
                await client.post(f"{url}/predict", json=body(tasks), timeout=1.0)
        await until(lambda: len(label_studio.predictions) >= 2, within=180)
        async with httpx.AsyncClient() as client:
            jobs = (await client.get(f"{url}/jobs")).json()["jobs"]
    assert sorted(p["task"] for p in label_studio.predictions) == [1, 2], jobs


# -- 9. Label Studio refuses every write --------------------------------------------------------------


async def test_refused_write_backs_back_off_stop_and_say_so(
    settings, engine, image_server, label_studio, tmp_path, fast_retries, caplog
):
    tasks = tasks_in(label_studio, one_line_pages(image_server, "refused", 3))
    label_studio.refuse_writes = True
    configured = writing_to(settings, label_studio, tmp_path)
    configured_auth = changed(configured, basic_auth_user=AUTH[0], basic_auth_pass=AUTH[1])
    async with async_client(create_app(configured_auth, engine=engine)) as (client, services):
        await client.post("/predict", json=body(tasks), timeout=60, auth=AUTH)
        assert await until(lambda: read(services, 3), within=120)
        await asyncio.sleep(10.0)  # the old writer: every task again every second
        posts = label_studio.prediction_posts()
        (job,) = (await client.get("/jobs", auth=AUTH)).json()["jobs"]
    # One write at a time probes a refusing Label Studio, each wait twice the last, and
    # after a few it stops until /setup or a restart.
    assert posts <= 8, f"{posts} writes refused in 10 s"
    assert job["done_waiting"] == 3
    assert any("stopped" in reason for reason in job["not_written"]), job["not_written"]
    assert any("stopped" in record.getMessage() for record in caplog.records)
