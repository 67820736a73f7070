"""The job queue's state machine, step by step, on a real SQLite file: no process, no EasyOCR.

Two stores on one file stand for two worker processes (each has its own
owner name and connection, as WORKERS processes do); a third, never
started, stands for one that died holding work.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ocr_backend.jobs import store as store_module
from ocr_backend.jobs.progress import job_progress, writes_stopped
from ocr_backend.jobs.store import Delivery, Entry, JobStore, State
from ocr_backend.priority import Priority
from tests.support.label_studio import OCR_TEMPLATE

CONFIGS = {"c": OCR_TEMPLATE}


def entry(key: str, task_id: int | None = 1, project: str = "p") -> Entry:
    data = {"id": task_id, "data": {"ocr": f"{key}.png"}}
    return Entry(key, project, 7, task_id, "v1", "c", data, asked_by="req-1")


@pytest.fixture
def stores(tmp_path: Path):
    """Two live processes sharing one queue file."""
    one = JobStore(tmp_path, owner="here:1:one")
    other = JobStore(tmp_path, owner="here:2:other")
    yield one, other
    one.close()
    other.close()


def test_a_task_is_claimed_once_read_and_answered_once(stores):
    one, other = stores
    assert one.submit([entry("a")], CONFIGS, Priority.BULK, 0.0) == 1
    assert one.first_unsettled(["a"]) == 0
    claimed = one.claim_next(False)
    assert claimed is not None and claimed.key == "a" and claimed.label_config == OCR_TEMPLATE
    assert claimed.asked_by == "req-1" and claimed.priority is Priority.BULK
    assert other.claim_next(False) is None  # never the same task twice
    other.finish("a", [{"id": "x"}], 0.5)  # not its claim: ignored
    assert one.first_unsettled(["a"]) == 0
    one.finish("a", [{"id": "x"}], 0.9)
    assert one.first_unsettled(["a"]) is None

    first = other.claim_answers(["a"], "req-2")["a"]
    assert first.answered_here and first.result == [{"id": "x"}] and first.score == 0.9
    assert first.state is State.DONE and first.delivery is Delivery.ANSWERED
    again = one.claim_answers(["a"], "req-3")["a"]  # a second answer does not get it too
    assert not again.answered_here and again.delivered_to == "req-2"
    assert again.delivery is Delivery.ANSWERING  # until its answer is sent whole
    other.answers_sent(["a"], "req-2")
    assert one.claim_answers(["a"], "req-4")["a"].delivery is Delivery.ANSWERED
    assert one.claim_writes(16) == []  # answered: nothing to write


def test_people_go_first_and_the_most_urgent_loop_takes_only_theirs(stores):
    one, _ = stores
    one.submit([entry("bulk-1", 1), entry("bulk-2", 2)], CONFIGS, Priority.BULK, 0.0)
    assert one.claim_next(most_urgent_only=True) is None
    one.submit([entry("person", 3)], CONFIGS, Priority.PEOPLE, 0.0)
    assert one.claim_next(most_urgent_only=True).key == "person"
    # Asked again by a person while queued: the task joins, and moves up.
    assert one.submit([entry("bulk-2", 2)], CONFIGS, Priority.PEOPLE, 0.0) == 0
    assert one.claim_next(most_urgent_only=False).key == "bulk-2"
    assert one.claim_next(most_urgent_only=False).key == "bulk-1"


def test_a_failed_task_is_reported_and_queued_again_when_asked_again(stores):
    one, _ = stores
    one.submit([entry("f")], CONFIGS, Priority.BULK, 0.0)
    one.claim_next(False)
    one.fail("f", "http_status", "image x: HTTP 404")
    outcome = one.claim_answers(["f"], "req-2")["f"]
    assert outcome.state is State.FAILED and not outcome.answered_here
    assert (outcome.reason, outcome.error) == ("http_status", "image x: HTTP 404")
    (job,) = job_progress(one)
    assert job.failed == 1 and job.failures == {"http_status": 1}
    assert job.failure_examples == ["image x: HTTP 404"]
    assert one.submit([entry("f")], CONFIGS, Priority.BULK, 0.0) == 1  # tried again
    assert one.claim_next(False).key == "f"


def test_a_claimed_task_put_back_is_queued_for_whoever_comes_next(stores):
    one, other = stores
    one.submit([entry("b")], CONFIGS, Priority.BULK, 0.0)
    one.claim_next(False)
    other.put_back("b")  # not its claim: ignored
    assert other.claim_next(False) is None
    one.put_back("b")
    assert other.claim_next(False).key == "b"


def test_a_result_no_answer_took_is_written_once_and_retried_after_a_failed_write(stores):
    one, other = stores
    one.submit([entry("w")], CONFIGS, Priority.BULK, wanted_until=time.time() + 60)
    one.claim_next(False)
    one.finish("w", [{"id": "x"}], 0.8)
    assert one.claim_writes(16) == []  # the answer that asked may still take it
    with pytest.MonkeyPatch.context() as patch:  # the waiting answer's time is up
        later = time.time() + 61
        patch.setattr(store_module.time, "time", lambda: later)
        (claimed,) = one.claim_writes(16)
        assert claimed.result == [{"id": "x"}] and not claimed.unsure
        assert other.claim_writes(16) == []  # being written: not claimed twice
        one.write_failed("w", "Label Studio answered 503", retry_in=30, unsure=False)
        assert one.claim_writes(16) == []  # not before retry_in
        assert job_progress(one)[0].not_written == ["Label Studio answered 503"]
        patch.setattr(store_module.time, "time", lambda: later + 31)
        (claimed,) = other.claim_writes(16)
        one.written("w")  # not its claim: ignored
        other.written("w")
        assert other.claim_writes(16) == []
    (job,) = job_progress(one)
    assert job.written == 1 and job.done_waiting == 0 and job.not_written == []
    outcome = one.claim_answers(["w"], "req-9")["w"]
    assert outcome.delivery is Delivery.WRITTEN and not outcome.answered_here


def test_work_held_by_a_dead_process_is_resumed_and_its_cut_write_is_checked(tmp_path):
    live = JobStore(tmp_path, owner="here:1:live")
    # Another machine's process: alive while it says so, gone once silent for a minute.
    dead = JobStore(tmp_path, owner="elsewhere:4242:dead")
    dead.heartbeat()
    dead.submit([entry("r", 1), entry("w", 2)], CONFIGS, Priority.BULK, 0.0)
    dead.claim_next(False)
    dead.claim_next(False)
    dead.finish("w", [{"id": "y"}], 0.7)
    assert dead.claim_writes(16)[0].key == "w"
    dead.close()
    assert live.recover() == (0, 0)  # seen a moment ago: still working
    with pytest.MonkeyPatch.context() as patch:
        later = time.time() + store_module.OWNER_TIMEOUT_S + 1
        patch.setattr(store_module.time, "time", lambda: later)
        assert live.recover() == (1, 1)
        assert live.claim_next(False).key == "r"  # read again
        (write,) = live.claim_writes(16)
    assert write.key == "w" and write.unsure  # Label Studio is asked before writing again
    assert live.recover() == (0, 0)  # nothing is resumed twice
    live.close()


def test_claims_of_a_process_killed_before_its_first_heartbeat_are_resumed(tmp_path):
    dead = JobStore(tmp_path, owner="elsewhere:4243:never-seen")
    dead.submit([entry("r")], CONFIGS, Priority.BULK, 0.0)
    dead.claim_next(False)
    dead.close()
    live = JobStore(tmp_path, owner="here:1:live")
    assert live.recover() == (1, 0)
    assert live.claim_next(False).key == "r"
    live.close()


def test_delivered_and_failed_rows_are_forgotten_after_a_while_and_nothing_else(stores):
    one, _ = stores
    one.submit([entry(k, i) for i, k in enumerate("adq")], CONFIGS, Priority.BULK, 0.0)
    for _ in "ad":
        one.claim_next(False)
    one.finish("a", [], 0.0)
    one.claim_answers(["a"], "req")
    one.answers_sent(["a"], "req")
    one.fail("d", "pdf", "a PDF")
    assert one.forget_delivered(older_than_s=3600) == 0  # delivered just now: kept
    assert one.forget_delivered(older_than_s=-1) == 2  # "later": the answered and the failed
    assert one.first_unsettled(["q"]) == 0  # what is still queued stays
    (job,) = job_progress(one)
    assert (job.queued, job.answered, job.failed) == (1, 0, 0)


def stored(store: JobStore, key: str) -> tuple[dict, str]:
    row = store.db.execute("SELECT task, config FROM tasks WHERE key = ?", (key,)).fetchone()
    return json.loads(row["task"]), row["config"]


def test_a_result_keeps_its_data_and_config_until_delivered_and_gets_them_back_when_asked(
    stores,
):
    # The write-back compares a result's data with Label Studio's own and reads the task
    # again when they differ. With the data cleared as soon as a task was read, every
    # result looked forged: read again, cleared again, and never written (two services on
    # one MODEL_DIR: no task written in 134 s).
    one, _ = stores
    one.submit([entry("w"), entry("x", 2)], CONFIGS, Priority.BULK, 0.0)
    for _ in "wx":
        one.claim_next(False)
    one.finish("w", [{"id": "r"}], 0.8)
    one.finish("x", [{"id": "r"}], 0.8)
    assert stored(one, "w") == (entry("w").task, "c")
    one.claim_answers(["x"], "req-2")
    writes = one.claim_writes(16)
    assert [(c.key, c.task, c.label_config) for c in writes] == [
        ("w", entry("w").task, OCR_TEMPLATE)
    ]
    one.written("w")
    one.answers_sent(["x"], "req-2")
    # Delivered: neither is needed any more (defect 10: they made the file grow).
    assert stored(one, "w") == ({}, "-") and stored(one, "x") == ({}, "-")
    with pytest.MonkeyPatch.context() as patch:  # asked again, after the write was lost
        later = time.time() + store_module.RECENTLY_WRITTEN_S + 1
        patch.setattr(store_module.time, "time", lambda: later)
        one.submit([entry("w"), entry("x", 2)], CONFIGS, Priority.BULK, 0.0)
        assert {(c.key, c.task["data"]["ocr"]) for c in one.claim_writes(16)} == {
            ("w", "w.png"),
            ("x", "x.png"),
        }


def test_states_keep_the_values_stored_in_existing_queue_files():
    # Rows written by earlier versions hold these strings: the enums must read them.
    assert [s.value for s in State] == ["queued", "reading", "done", "failed"]
    assert [d.value for d in Delivery] == ["answered", "writing", "written", "unsure", "answering"]


def test_an_answer_not_sent_gives_its_results_to_the_writer_and_a_stale_one_is_unsure(stores):
    one, _ = stores
    one.submit([entry("g", 1), entry("s", 2)], CONFIGS, Priority.BULK, 0.0)
    for key in "gs":
        one.claim_next(False)
        one.finish(key, [{"id": key}], 0.9)
    assert {k for k, o in one.claim_answers(["g", "s"], "req").items() if o.answered_here} == {
        "g",
        "s",
    }
    one.answers_not_sent(["g"], "req")  # the client hung up: written instead, at once
    assert [c.key for c in one.claim_writes(16)] == ["g"]
    with pytest.MonkeyPatch.context() as patch:  # "s" was never confirmed: the process died
        later = time.time() + store_module.ANSWERING_STALE_S + 1
        patch.setattr(store_module.time, "time", lambda: later)
        (stale,) = one.claim_writes(16)
    assert stale.key == "s" and stale.unsure  # checked against Label Studio, then written


def test_a_service_claims_only_the_rows_of_its_own_label_studio(tmp_path):
    mine = JobStore(tmp_path, owner="here:1:a", scope="http://ls-a:8080")
    theirs = JobStore(tmp_path, owner="here:2:b", scope="http://ls-b:8080")
    theirs.submit([entry("b")], CONFIGS, Priority.BULK, 0.0)
    assert mine.claim_next(False) is None and job_progress(mine) == []
    assert theirs.claim_next(False).key == "b"
    theirs.finish("b", [], 0.0)
    assert mine.claim_writes(16) == [] and len(theirs.claim_writes(16)) == 1
    mine.close()
    theirs.close()


def test_writes_held_stopped_and_resumed_by_project(stores):
    one, _ = stores
    one.submit([entry("h", 1), entry("k", 2)], CONFIGS, Priority.BULK, 0.0)
    one.claim_next(False)
    one.finish("h", [], 0.0)
    (claimed,) = one.claim_writes(16)
    one.write_failed("h", "refused", store_module.WRITES_STOPPED, unsure=False, attempts=5)
    one.hold_writes("p", store_module.WRITES_STOPPED, "writing stopped")
    assert one.refusals("p") == 5
    one.claim_next(False)  # read after the stop: held too
    one.finish("k", [], 0.0)
    assert one.claim_writes(16) == []
    assert writes_stopped(one, "p") == 2
    assert one.resume_writes("p") == 2  # a /setup of the project, or a start
    assert {c.key for c in one.claim_writes(16)} == {"h", "k"}
