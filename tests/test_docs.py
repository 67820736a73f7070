"""The OpenAPI docs page works offline, and its examples work as they are."""

from __future__ import annotations

import re

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
