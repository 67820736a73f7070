"""What /setup sent survives between processes, is never half-written, and stays private."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

from ocr_backend.label_studio.projects import ProjectSetup, ProjectStore

SRC = str(Path(__file__).parents[1] / "src")


def run_python(code: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env)


def test_another_process_reads_what_one_process_stored(tmp_path):
    child = run_python(f"""
        from ocr_backend.label_studio.projects import ProjectSetup, ProjectStore
        ProjectStore({str(tmp_path)!r}).save(
            "4.17", ProjectSetup("<View/>", "http://ls:8080", "secret-key")
        )
    """)
    assert child.wait(timeout=60) == 0
    assert ProjectStore(tmp_path).load("4.17") == ProjectSetup(
        "<View/>", "http://ls:8080", "secret-key"
    )
    (stored,) = tmp_path.iterdir()
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600


def test_two_processes_writing_at_once_leave_one_whole_file(tmp_path):
    writer = """
        from ocr_backend.label_studio.projects import ProjectSetup, ProjectStore
        store = ProjectStore({root!r})
        for n in range(200):
            store.save("9.1", ProjectSetup("{tag}" * 5000, "http://{tag}:8080", "{tag}"))
    """
    children = [run_python(writer.format(root=str(tmp_path), tag=tag)) for tag in "ab"]
    path = ProjectStore(tmp_path).path("9.1")
    reads = 0
    while any(child.poll() is None for child in children):
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        stored = json.loads(text)  # a half-written file would not parse
        tag = stored["access_token"]
        assert stored["label_config"] == tag * 5000
        reads += 1
    assert reads > 0
    assert all(child.returncode == 0 for child in children)
    assert [p.name for p in tmp_path.iterdir()] == ["project-9.1.json"]  # no temporary left


def test_project_keys_cannot_choose_the_path(tmp_path):
    store = ProjectStore(tmp_path)
    for key in ("../../etc/passwd", "/abs", ".hidden", "a/b", "x" * 500):
        assert store.path(key).parent == tmp_path
    assert store.path("12.1763892800").name == "project-12.1763892800.json"
    assert store.path(None) != store.path("None")


def test_an_unwritable_model_dir_keeps_the_setup_in_this_process(tmp_path, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    store = ProjectStore(blocked / "projects")
    store.save("1.1", ProjectSetup("<View/>"))
    assert store.load("1.1") == ProjectSetup("<View/>")
    assert "other worker processes will not see it; make MODEL_DIR writable" in caplog.text


def test_the_token_stays_out_of_repr():
    assert "s3cret" not in repr(ProjectSetup("<View/>", "http://ls", "s3cret"))
