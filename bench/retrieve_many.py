""" "Retrieve predictions" on a project of many photos, as a new user would do it.

A throwaway Label Studio 1.23.2 with its default time-outs (ML_TIMEOUT_PREDICT
100 s) and the service with its default PREDICT_DEADLINE, on 127.0.0.1. The
photos are the real ones in tests/images and variants of them (crops, scales,
rotations), uploaded to Label Studio. Prints how long the action took, what it
stored at once, when every task had its prediction, and whether any task got
two. Usage:
  .venv/bin/python -m bench.retrieve_many [--photos 60]   (from the repository root)
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

from PIL import Image

from tests.e2e.labelstudio import (
    LabelStudioApi,
    create_personal_access_token,
    login_session,
    start_label_studio,
    stock_ocr_config,
)
from tests.e2e.service import start_service
from tests.support.environment import REPO_ROOT as ROOT


def photos(count: int) -> dict[str, bytes]:
    """The real photos, then variants of them, `count` in all, as JPEG files."""
    files_ = sorted((ROOT / "tests/images").iterdir())
    originals = [Image.open(p).convert("RGB") for p in files_ if p.suffix in {".png", ".jpeg"}]
    files = {}
    for index in range(count):
        image = originals[index % len(originals)]
        variant = index // len(originals)
        if variant:
            w, h = image.size
            scale = 0.7 + 0.1 * (variant % 5)
            left, top = (variant * 13) % (w // 5), (variant * 7) % (h // 5)
            image = image.crop((left, top, w - left // 2, h - top // 2))
            image = image.resize((int(image.width * scale), int(image.height * scale)))
            image = image.rotate((variant % 3 - 1) * 2, expand=True, fillcolor="white")
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        files[f"photo-{index:03d}.jpg"] = buffer.getvalue()
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=60)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-retrieve-"))
    label_studio = start_label_studio(work, work / "label-studio.log")
    service = None
    try:
        session = login_session(label_studio.url, label_studio.email, label_studio.password)
        token = create_personal_access_token(session)
        api = LabelStudioApi(label_studio.url, token)
        project = api.create_project("Many photos", stock_ocr_config())["id"]
        files = photos(args.photos)
        task_ids = api.import_files(project, files)["task_ids"]
        service = start_service(
            "many",
            {
                "LABEL_STUDIO_HOST": label_studio.url,
                "LABEL_STUDIO_ACCESS_TOKEN": token,
                "MODEL_DIR": str(work / "model-dir"),
            },
            work,
        )
        connected = api.connect_backend(project, service.url_for_label_studio)
        assert connected.status_code == 201, connected.text
        started = time.monotonic()
        answer = api.retrieve_predictions(project, task_ids)
        action_s = time.monotonic() - started

        def stored() -> dict[int, int]:
            return {task: len(api.predictions(task)) for task in task_ids}

        at_once = sum(1 for n in stored().values() if n)
        print(f"{len(task_ids)} photos; Label Studio's action answered in {action_s:.1f} s: "
              f"{answer.get('detail')}; {at_once} predictions stored by it")  # fmt: skip
        while True:
            counts = stored()
            if all(counts.values()):
                break
            time.sleep(2)
        all_s = time.monotonic() - started
        time.sleep(5)
        counts = stored()
        print(f"every task had a prediction {all_s:.1f} s after the click "
              f"({len(task_ids) / all_s:.2f} images/s)")  # fmt: skip
        print(f"predictions per task: {sorted(set(counts.values()))} (1 = exactly once)")
        import httpx

        print(httpx.get(f"{service.url}/jobs", trust_env=False).json())
    finally:
        if service is not None:
            service.stop()
        label_studio.process.stop()


if __name__ == "__main__":
    main()
