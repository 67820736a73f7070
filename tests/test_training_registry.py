"""The per-project model registry under MODEL_DIR: keyed by Label Studio host and project,
written whole, the previous version kept, one command to roll back."""

from __future__ import annotations

import subprocess
import sys

from ocr_backend.training.registry import ModelRegistry, host_folder, project_version
from tests.support.environment import with_source_path, without_service_variables

STOCK = "easyocr-1.7.2-en-0123abcd"


def promote(registry: ModelRegistry, project: int, promote: bool = True):
    number = registry.next_number(project)
    registry.weights_path(project, number).write_bytes(b"weights %d" % number)
    return registry.record(project, number, {"reason": "test"}, promote, STOCK)


def test_a_promoted_training_serves_its_project_only_and_only_on_its_label_studio(tmp_path):
    here = ModelRegistry(tmp_path, "http://label-studio:8080")
    elsewhere = ModelRegistry(tmp_path, "http://other-studio:8080")
    assert here.current(7) is None
    served = promote(here, 7)
    assert served is not None and here.current(7) == served
    assert served.version == project_version(STOCK, 7, 1) == f"{STOCK}-project7-training1"
    assert here.current(8) is None, "another project keeps the stock model"
    assert elsewhere.current(7) is None, "another Label Studio's project 7 keeps it too"
    assert host_folder("http://Label-Studio:8080/") == host_folder("http://label-studio:8080")
    assert host_folder("http://label-studio:8080") != host_folder("https://label-studio:8080")


def test_a_training_that_is_not_better_is_kept_aside_and_not_served(tmp_path):
    registry = ModelRegistry(tmp_path, "http://label-studio:8080")
    first = promote(registry, 7)
    assert promote(registry, 7, promote=False) is None
    assert registry.current(7) == first
    trainings = registry.trainings(7)
    assert [(t["number"], t["promoted"]) for t in trainings] == [(1, True), (2, False)]
    assert registry.weights_path(7, 2).is_file(), "its weights are kept, with its figures"


def test_rollback_serves_the_previous_version_then_the_stock_model(tmp_path):
    registry = ModelRegistry(tmp_path, "http://label-studio:8080")
    first, second = promote(registry, 7), promote(registry, 7)
    assert registry.current(7) == second
    assert registry.rollback(7) == (second, first)
    assert registry.rollback(7) == (first, None)
    assert registry.rollback(7) == (None, None)
    assert registry.weights_path(7, 2).is_file()
    assert promote(registry, 7).number == 3, "numbers are never reused"


def test_no_half_written_file_is_left_behind(tmp_path):
    registry = ModelRegistry(tmp_path, "http://label-studio:8080")
    promote(registry, 7)
    leftovers = [p.name for p in registry.folder(7).iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_the_rollback_command(tmp_path):
    registry = ModelRegistry(tmp_path, "http://label-studio:8080")
    first, second = promote(registry, 7), promote(registry, 7)
    environ = without_service_variables() | {
        "MODEL_DIR": str(tmp_path),
        "LABEL_STUDIO_HOST": "http://label-studio:8080",
    }

    def rollback() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "ocr_backend", "rollback", "--project", "7"],
            env=with_source_path(environ),
            capture_output=True,
            text=True,
            timeout=120,
        )

    done = rollback()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"project 7: {second.version} no longer serves it; now {first.version}"
    )
    assert registry.current(7) == first
    rollback()
    last = rollback()
    assert last.returncode == 1
    assert "the stock model serves it already" in last.stdout
