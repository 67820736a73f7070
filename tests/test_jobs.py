"""Bulk /predict: answered by PREDICT_DEADLINE, the rest read in the background, delivered once.

Real EasyOCR, real HTTP servers on 127.0.0.1 (images, and a small server that
speaks Label Studio's token and prediction API), the real queue file on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest

from ocr_backend.api import create_app
from ocr_backend.jobs.answers import label_studio_project
from ocr_backend.jobs.store import FILE_NAME, Entry, JobStore
from ocr_backend.label_studio.schemas import Task
from ocr_backend.label_studio.storage import LabelStudioImageFetcher
from ocr_backend.predictor import Predictor
from ocr_backend.priority import Priority, PriorityGate
from tests.support.asgi import async_client
from tests.support.drawing import draw_page
from tests.support.label_studio import OCR_TEMPLATE
from tests.support.label_studio_server import LabelStudioWithPredictions
from tests.support.settings import changed

# Marked one by one: real processes sharing one queue, and pages read in the background,
# are slow; the pure tests here are not.

PROJECT = "7.1763892800"
AUTH = ("operator", "s3cret-pass")
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def label_studio():
    server = LabelStudioWithPredictions(storage_url="http://127.0.0.1:9")
    yield server
    server.close()


def body_for(urls: list[str], first_id: int = 1) -> dict:
    tasks = [
        {"id": first_id + index, "data": {"ocr": url}, "project": 7}
        for index, url in enumerate(urls)
    ]
    return {"tasks": tasks, "project": PROJECT, "label_config": OCR_TEMPLATE}


def pages(image_server, prefix: str, count: int) -> list[str]:
    return [
        # Four lines each: a page takes the engine a while even on a quiet machine (a
        # third of a second and more), so that six of them surely do not fit in one second.
        image_server.put(
            f"{prefix}-{i}.png",
            draw_page([f"PAGE {i} LINE {n} OF FOUR" for n in range(4)], font_size=36)[0],
        )
        for i in range(count)
    ]


def fetches(image_server, urls: list[str]) -> dict[str, int]:
    paths = [urlsplit(url).path for url in urls]
    return {path: sum(1 for p, _ in image_server.requests if p == path) for path in paths}


async def job_of(client, project: str = PROJECT) -> dict:
    jobs = (await client.get("/jobs", auth=AUTH)).json()["jobs"]
    # Anonymous callers see no project ids (basic auth off): then the only job is it.
    return next(job for job in jobs if job.get("project", project) == project)


async def until(check, within: float = 120.0):
    started = time.monotonic()
    while time.monotonic() - started < within:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"not reached in {within} s")


def has_result(item: dict) -> bool:
    return "result" in item


# -- the queue file ---------------------------------------------------------------------

CLAIMER = """
import json, os, sys, time
from pathlib import Path
from ocr_backend.jobs.store import JobStore

folder = Path(sys.argv[1])
store = JobStore(folder)
(folder / f"ready-{os.getpid()}").touch()
while not (folder / "go").exists():  # all start claiming together
    time.sleep(0.01)
claimed = []
while (task := store.claim_next(False)) is not None:
    claimed.append(task.key)
    time.sleep(0.002)  # a worker reads between claims
store.close()
print(json.dumps(claimed))
"""


@pytest.mark.slow
def test_processes_claiming_from_one_queue_never_take_the_same_task(tmp_path):
    store = JobStore(tmp_path)
    entries = [
        Entry(f"k{i}", "p", 1, i, "v", "c", {"id": i, "data": {"ocr": f"{i}.png"}})
        for i in range(300)
    ]
    store.submit(entries, {"c": OCR_TEMPLATE}, Priority.BULK, 0.0)
    store.close()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, str(tmp_path)],
            stdout=subprocess.PIPE,
            env={"PYTHONPATH": str(SRC)},
        )
        for _ in range(3)
    ]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    (tmp_path / "go").touch()
    claimed = [json.loads(worker.communicate(timeout=120)[0]) for worker in workers]
    every = [key for keys in claimed for key in keys]
    assert sorted(every) == sorted(entry.key for entry in entries)  # all, none twice
    assert sum(1 for keys in claimed if keys) >= 2  # they did share the work


async def test_a_freed_engine_place_goes_to_people_before_bulk_work():
    gate = PriorityGate(1)
    order: list[str] = []

    async def use(name: str, priority: Priority) -> None:
        async with gate.slot(priority):
            order.append(name)
            await asyncio.sleep(0.01)

    async with gate.slot(Priority.BULK):
        waiting = [asyncio.create_task(use(f"bulk{i}", Priority.BULK)) for i in range(3)]
        await asyncio.sleep(0.01)
        waiting.append(asyncio.create_task(use("person", Priority.PEOPLE)))
        await asyncio.sleep(0.01)
    await asyncio.gather(*waiting)
    assert order == ["person", "bulk0", "bulk1", "bulk2"]


async def test_bulk_work_and_people_together_hold_no_more_pages_than_threads_plus_two(
    settings, engine
):
    """Issue 22 defect 16: each priority had THREADS + 2 places of its own, so a job and
    annotators together held twice the pages the docs promise."""
    async with httpx.AsyncClient() as http:
        fetcher = LabelStudioImageFetcher(http, max_bytes=1_000_000, settings=settings)
        predictor = Predictor(engine, fetcher, settings)
    in_hand, peak, people_in = 0, 0, 0
    go = asyncio.Event()

    def loader(priority: Priority):
        async def load() -> np.ndarray:
            nonlocal in_hand, peak, people_in
            in_hand += 1
            peak = max(peak, in_hand)
            people_in += priority is Priority.PEOPLE
            await go.wait()
            return np.full((40, 120, 3), 255, np.uint8)

        return load

    async def read(priority: Priority) -> None:
        nonlocal in_hand
        await predictor._load_and_read(loader(priority), priority, None)
        in_hand -= 1  # the place is free again: nothing ran in between

    jobs = [asyncio.create_task(read(Priority.BULK)) for _ in range(6)]
    await asyncio.sleep(0.05)  # the job takes every place it may
    jobs += [asyncio.create_task(read(Priority.PEOPLE)) for _ in range(6)]
    await asyncio.sleep(0.05)
    assert in_hand == predictor.images_in_hand == engine.threads + 2
    assert people_in >= 1, "an annotator's page is fetched while the job holds the rest"
    go.set()
    await asyncio.gather(*jobs)
    assert peak == predictor.images_in_hand


# -- /predict with a deadline -------------------------------------------------------------


@pytest.mark.slow
async def test_what_misses_the_deadline_is_written_to_label_studio_once(
    settings, engine, image_server, label_studio, tmp_path
):
    urls = pages(image_server, "written", 6)
    for task in body_for(urls)["tasks"]:  # as Label Studio holds them
        label_studio.add_task(task["id"], task["data"])
    configured = changed(
        settings,
        model_dir=tmp_path,
        predict_deadline=1.0,
        label_studio_host=label_studio.host,
        label_studio_access_token=label_studio.personal_access_token,
    )
    async with async_client(create_app(configured, engine=engine)) as (client, _):
        started = time.monotonic()
        response = await client.post("/predict", json=body_for(urls), timeout=60)
        took = time.monotonic() - started
        results = response.json()["results"]
        assert response.status_code == 200 and len(results) == 6
        assert took < 1.0 + 3.0  # the deadline, plus at most the image being read
        pending = [i for i, item in enumerate(results) if not has_result(item)]
        assert pending, "six pages cannot all be read in one second"
        for index in pending:
            assert results[index]["status"] == "pending"
            assert "written to Label Studio" in results[index]["error"]
        done = await until(
            lambda: _settled(client, lambda job: job["written"] == len(pending)), within=180
        )
        assert done["answered"] == 6 - len(pending) and done["failed"] == 0
    written = {p["task"]: p for p in label_studio.predictions}
    assert sorted(written) == [index + 1 for index in pending]  # each once, none answered
    for index in pending:
        prediction = written[index + 1]
        assert prediction["model_version"] == results[0]["model_version"]
        texts = {
            item["value"]["text"][0] for item in prediction["result"] if item["type"] == "textarea"
        }
        assert any(text.startswith(f"PAGE {index} LINE") for text in texts), texts
    assert set(fetches(image_server, urls).values()) == {1}  # nothing read twice


async def _settled(client, condition):
    job = await job_of(client)
    return job if condition(job) else None


@pytest.mark.slow
async def test_without_a_token_results_are_kept_for_the_next_answer(
    settings, engine, image_server, tmp_path
):
    urls = pages(image_server, "kept", 4)
    configured = changed(settings, model_dir=tmp_path, predict_deadline=0.5)
    async with async_client(create_app(configured, engine=engine)) as (client, _):
        first = (await client.post("/predict", json=body_for(urls), timeout=60)).json()
        pending = [i for i, item in enumerate(first["results"]) if not has_result(item)]
        assert pending
        assert "in the answer the next time" in first["results"][pending[0]]["error"]
        await until(lambda: _settled(client, lambda job: not job["active"]))
        second = (await client.post("/predict", json=body_for(urls), timeout=60)).json()
    # Label Studio asks again only for what it lacks: the second answer has every result.
    for index in range(4):
        got = [has_result(answer["results"][index]) for answer in (first, second)]
        assert got[1], index
    assert set(fetches(image_server, urls).values()) == {1}


@pytest.mark.slow
async def test_the_same_tasks_asked_twice_at_once_are_read_once_and_answered_once(
    settings, engine, image_server, tmp_path
):
    urls = pages(image_server, "twice", 3)
    # A deadline no busy machine misses: a result past it is in neither answer.
    configured = changed(settings, model_dir=tmp_path, predict_deadline=240)
    async with async_client(create_app(configured, engine=engine)) as (client, _):
        answers = await asyncio.gather(
            client.post("/predict", json=body_for(urls), timeout=300),
            client.post("/predict", json=body_for(urls), timeout=300),
        )
    first, second = (answer.json()["results"] for answer in answers)
    for one, other in zip(first, second, strict=True):
        assert has_result(one) != has_result(other)  # delivered in exactly one answer
        loser = other if has_result(one) else one
        assert loser["status"] == "delivered"
    assert set(fetches(image_server, urls).values()) == {1}


@pytest.mark.slow
async def test_a_failed_task_is_reported_and_tried_again_by_the_next_request(
    settings, engine, image_server, tmp_path
):
    url = image_server.url("late-arrival.png")
    configured = changed(
        settings,
        model_dir=tmp_path,
        predict_deadline=30,
        basic_auth_user=AUTH[0],  # the failure messages are shown to an operator only
        basic_auth_pass=AUTH[1],
    )
    body = body_for([url, image_server.put("neighbour.png", draw_page(["NEIGHBOUR"])[0])])
    async with async_client(create_app(configured, engine=engine)) as (client, _):
        first = (await client.post("/predict", json=body, timeout=60, auth=AUTH)).json()["results"]
        job = await job_of(client)
        image_server.put("late-arrival.png", draw_page(["ARRIVED"])[0])
        again = (await client.post("/predict", json=body, timeout=60, auth=AUTH)).json()["results"]
        metrics = (await client.get("/metrics", auth=AUTH)).text
    assert "result" not in first[0] and first[0]["status"] == "failed"
    assert first[0]["reason"] == "http_status" and "HTTP 404" in first[0]["error"]
    assert has_result(first[1])
    assert job["failed"] == 1 and job["failures"] == {"http_status": 1}
    assert "HTTP 404" in job["failure_examples"][0]
    assert has_result(again[0])  # tried again, and this time read
    assert 'ocr_backend_predict_items_total{status="failed"}' in metrics


@pytest.mark.slow
async def test_work_left_queued_by_a_stopped_process_is_read_at_the_next_start(
    settings, engine, image_server, tmp_path
):
    urls = pages(image_server, "resumed", 2)
    configured = changed(settings, model_dir=tmp_path, predict_deadline=30)
    # A process that claimed both tasks, then died without a word.
    dead = JobStore(tmp_path / "jobs", owner="somewhere:999999:dead")
    entries = [
        Entry(f"left-{i}", PROJECT, 7, i + 1, "v", "c", {"id": i + 1, "data": {"ocr": url}})
        for i, url in enumerate(urls)
    ]
    dead.submit(entries, {"c": OCR_TEMPLATE}, Priority.BULK, 0.0)
    assert dead.claim_next(False) is not None
    dead.close()
    async with async_client(create_app(configured, engine=engine)) as (client, services):
        job = await until(lambda: _settled(client, lambda job: job["done_waiting"] == 2))
    with contextlib.closing(sqlite3.connect(tmp_path / "jobs" / FILE_NAME)) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT key, state, result FROM tasks ORDER BY key").fetchall()
    assert job["failed"] == 0
    assert [row["state"] for row in rows] == ["done", "done"]
    assert all(json.loads(row["result"]) for row in rows)


@pytest.mark.parametrize(
    ("project", "extra", "expected"),
    [
        ("12.1700000000", None, 12),
        ("9" * 30 + ".1", None, None),  # beyond 64 bits: no project to write to (fuzzer)
        ("².1", None, None),  # a digit to str.isdigit, not to int()
        (None, 7, 7),
        (None, True, None),
        (None, 2**70, None),
    ],
)
def test_the_label_studio_project_is_a_64_bit_id_or_none(project, extra, expected):
    task = Task(id=1, data={}, **({} if extra is None else {"project": extra}))
    assert label_studio_project(project, task) == expected
