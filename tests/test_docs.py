"""The OpenAPI docs page works offline, and its examples work as they are."""

from __future__ import annotations

import re
from pathlib import Path

import pytest


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_every_asset_from_the_service_itself(client, page):
    html = client.get(page)
    assert html.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
    assert any(a.endswith(".js") for a in assets)
    for asset in assets:
        assert asset.startswith("/"), f"{page} loads {asset} from another host"
        assert client.get(asset).status_code == 200
    assert "fonts.googleapis" not in html.text and "cdn." not in html.text


def example(client, path: str) -> dict:
    operation = client.get("/openapi.json").json()["paths"][path]["post"]
    (first, *_) = operation["requestBody"]["content"]["application/json"]["examples"].values()
    return first["value"]


def test_the_predict_example_reads_its_word_as_is(client):
    response = client.post("/predict", json=example(client, "/predict"))
    assert response.status_code == 200
    texts = [item["value"]["text"] for item in response.json()["results"][0]["result"]
             if item["type"] == "textarea"]  # fmt: skip
    assert texts == [["HELLO"]]


@pytest.mark.parametrize("path", ["/setup", "/webhook"])
def test_the_other_examples_are_accepted(client, path):
    assert client.post(path, json=example(client, path)).status_code == 200


def test_request_and_response_models_are_documented(client):
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for name in ("PredictRequest", "PredictResponse", "Prediction", "SetupRequest", "SetupResponse",
                 "WebhookRequest", "WebhookResponse"):  # fmt: skip
        assert name in schemas
    assert schemas["NotPredicted"]["properties"]["error"]["description"]
    assert "result" not in schemas["NotPredicted"]["properties"]
    predict = spec["paths"]["/predict"]["post"]
    assert predict["responses"]["200"]["content"]["application/json"]["example"]["results"]


# --- what the docs tell a user to set or to expect, checked against the code ---------

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Upper-case names the docs mention that are not this service's settings, by whose they are.
FOREIGN_VARIABLES = {
    # Label Studio's own settings (docs/label-studio.md)
    "ML_CONNECTION_TIMEOUT", "ML_TIMEOUT_HEALTH", "ML_TIMEOUT_SETUP", "ML_TIMEOUT_PREDICT",
    "USE_DEFAULT_BANNED_SUBNETS", "LOCAL_FILES_SERVING_ENABLED", "LOCAL_FILES_DOCUMENT_ROOT",
    "LABEL_STUDIO_BASE_DATA_DIR", "LABEL_STUDIO_USERNAME", "LABEL_STUDIO_PASSWORD",
    "SENTRY_DSN", "FRONTEND_SENTRY_DSN", "COLLECT_ANALYTICS", "LATEST_VERSION_CHECK",
    "START_TRAINING",  # the webhook action of "Start Training" (docs/training.md)
    # the process's environment, read by libraries
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "PROMETHEUS_MULTIPROC_DIR", "OMP_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "RAY_USAGE_STATS_ENABLED",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER",
    "FUZZ_SECONDS",  # the tests' own (tests/support/fuzzing.py, docs/development.md)
}  # fmt: skip


def documented_variables() -> dict[str, list[str]]:
    """Each upper-case NAME the docs put in backticks (`NAME` or `NAME=value`), with where."""
    found: dict[str, list[str]] = {}
    for doc in DOCS:
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            for name in re.findall(r"`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?:=[^`]*)?`", line):
                found.setdefault(name, []).append(f"{doc.relative_to(ROOT)}:{number}")
    return found


def test_every_setting_the_docs_name_exists():
    from ocr_backend.settings import Settings

    prefix = Settings.model_config.get("env_prefix", "")
    settings = {(prefix + name).upper() for name in Settings.model_fields}
    documented = documented_variables()
    assert "PREDICT_DEADLINE" in documented and "LANG_LIST" in documented  # it reads the docs
    unknown = {
        name: places
        for name, places in documented.items()
        if name not in settings and name not in FOREIGN_VARIABLES
    }
    assert unknown == {}, "the docs name settings the service does not read"


def reasons_the_code_gives() -> set[str]:
    """Every `reason` word a task's entry can carry: literals in the source, and defaults."""
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "src").rglob("*.py"))
    words = {
        word
        for expression in re.findall(r"reason(?:: str)? ?= ?([^,)\n]+)", source)
        for word in re.findall(r'"([a-z_]+)"', expression)
    }
    words |= {f"http_{status}" for status in (400, 401, 403, 404, 500)}  # http_<status>
    words.add("unexpected")  # predictor: an error no TaskError describes
    return words


def test_every_status_and_reason_the_docs_promise_is_one_the_code_gives():
    from typing import get_args

    from ocr_backend.label_studio.schemas import NotPredicted

    statuses = set(get_args(NotPredicted.model_fields["status"].annotation))
    reasons = reasons_the_code_gives()
    promised_statuses: set[str] = set()
    promised_reasons: set[str] = set()
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        promised_statuses |= set(re.findall(r'"status": "([a-z_]+)"', text))
        promised_reasons |= set(re.findall(r'"reason": "([a-z_]+)"', text))
        # The metrics table lists the reasons images fail with.
        for row in re.findall(r"^\| `ocr_backend_images_failed_total` \|.*$", text, re.M):
            promised_reasons |= set(re.findall(r"`([a-z_]+)`", row.split("|")[3]))
    assert {"failed", "pending"} <= promised_statuses and "deadline" in promised_reasons
    assert promised_statuses - statuses == set()
    assert promised_reasons - reasons == set()
