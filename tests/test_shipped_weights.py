"""A project's weights on their way to the cluster's actors, without Ray: what is put into the
object store and when, and the actor's own bounded files of them."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ocr_backend.ocr.shipped_weights import WeightsCache, WeightsShipper, actor_folder


def test_the_driver_puts_each_model_version_once_and_again_when_the_file_changes(
    tmp_path: Path,
):
    put: list[bytes] = []
    shipper = WeightsShipper(lambda data: put.append(data) or f"ref-{len(put)}", keep=2)
    weights = tmp_path / "training-1.pth"
    weights.write_bytes(b"first weights")
    first = shipper.ship(weights)
    assert shipper.ship(weights) is first and put == [b"first weights"]
    assert first.digest == hashlib.sha256(b"first weights").hexdigest()
    # The same path written again (a cleaned MODEL_DIR trained anew): shipped again.
    replacement = tmp_path / "new.pth"
    replacement.write_bytes(b"other weights")
    replacement.replace(weights)
    second = shipper.ship(weights)
    assert second.digest != first.digest and len(put) == 2
    # Gone since it was shipped: what was shipped serves on; never shipped and gone: an error.
    weights.unlink()
    assert shipper.ship(weights) is second
    with pytest.raises(FileNotFoundError, match="not there"):
        shipper.ship(tmp_path / "training-9.pth")


def test_the_driver_keeps_the_latest_models_only(tmp_path: Path):
    shipper = WeightsShipper(lambda data: object(), keep=2)
    paths = []
    for number in range(3):
        paths.append(tmp_path / f"training-{number}.pth")
        paths[-1].write_bytes(b"w%d" % number)
        shipper.ship(paths[-1])
    assert list(shipper._shipped) == paths[1:]


def test_an_actor_keeps_the_weights_it_was_sent_in_a_few_files_of_its_own(tmp_path: Path):
    cache = WeightsCache(tmp_path, keep=2)
    digests = [hashlib.sha256(b"w%d" % n).hexdigest() for n in range(3)]
    assert cache.find(digests[0]) is None
    first = cache.store(digests[0], b"w0")
    assert first == tmp_path / f"{digests[0]}.pth" and first.read_bytes() == b"w0"
    cache.store(digests[1], b"w1")
    os.utime(tmp_path / f"{digests[1]}.pth", (1, 1))  # the least recently used
    assert cache.find(digests[0]) == first
    cache.store(digests[2], b"w2")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{d}.pth" for d in (digests[0], digests[2])
    )
    # Weights a read uses now stay, over the bound.
    os.utime(tmp_path / f"{digests[0]}.pth", (1, 1))
    cache.store(digests[1], b"w1", in_use=frozenset({digests[0]}))
    assert len(list(tmp_path.iterdir())) == 3


def test_an_actor_refuses_bytes_that_do_not_match_their_digest(tmp_path: Path):
    cache = WeightsCache(tmp_path)
    with pytest.raises(ValueError, match="do not match"):
        cache.store(hashlib.sha256(b"right").hexdigest(), b"wrong")
    with pytest.raises(ValueError, match="not a SHA-256"):
        cache.find("../../etc/passwd")
    assert list(tmp_path.iterdir()) == []


def test_the_folders_of_actors_gone_are_removed(tmp_path: Path):
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    gone = tmp_path / f"actor-{ended.stdout.strip()}"
    gone.mkdir()
    (gone / "x.pth").write_bytes(b"x")
    mine = actor_folder(tmp_path)
    assert mine == tmp_path / f"actor-{os.getpid()}" and mine.is_dir()
    assert not gone.exists()
