"""Request and response examples for the OpenAPI docs page.

"Try it out" on /predict must work as is: the example carries Label Studio's
stock OCR template and an inline image with one word on it, so no network is
needed to try the service by hand.
"""

from __future__ import annotations

from typing import Any

from ..label_studio.config import STOCK_OCR_CONFIG

# A 260x80 black-and-white PNG with the word HELLO in DejaVu Sans Bold.
HELLO_PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAQQAAABQAQAAAADXGzbyAAAA8UlEQVR42u2VsW3DMBBF3xEsrgo8gkbwACk4GgNkMHoDj+BsECONZCi5FLJsSyGlwikMg9cReLj/75MHirFcR8daVaISz0r8uL+EYxfeRLsN3wpfFlZ67NnPCQOI0EIPJNo5IWdCwYNFTmuz9NOjB6ABoxtGEWcZH4cbH05Y9tF7Yrwz01YJaTmPTI+pj6yKSQDZ3HP7/+IDCMt5iKWEfZZVbKKi8443PsZQSaVpCyqX9zGq+J5ohfcxboMV8xhUnJ0k70NUj/LeSUBdwemwCXzEWbLXPHwLr9AEdOVetmwzKs1V5fAi08Sk/oSVqMSDEb/3x1IHHKvw0wAAAABJRU5ErkJggg=="  # noqa: E501


PREDICT_EXAMPLES: dict[str, Any] = {
    "inline image": {
        "summary": "One task with an inline image of the word HELLO",
        "value": {
            "tasks": [{"id": 1, "data": {"ocr": HELLO_PNG}}],
            "project": "1.1763892800",
            "label_config": STOCK_OCR_CONFIG,
            "params": {"context": None},
        },
    },
}

SETUP_EXAMPLES: dict[str, Any] = {
    "stock OCR template": {
        "summary": "What Label Studio sends when a project connects",
        "value": {
            "project": "1.1763892800",
            "schema": STOCK_OCR_CONFIG,
            "hostname": "http://localhost:8080",
            "access_token": "",
            "extra_params": None,
        },
    },
}

WEBHOOK_EXAMPLES: dict[str, Any] = {
    "training request": {
        "summary": "The Start training button",
        "value": {"action": "START_TRAINING", "project": {"id": 1}},
    },
}

_GEOMETRY = {"x": 7.7, "y": 18.8, "width": 50.4, "height": 56.3, "rotation": 0}
_COMMON = {
    "id": "Xa8sK2pQ0d",
    "to_name": "image",
    "original_width": 260,
    "original_height": 80,
    "image_rotation": 0,
    "score": 0.99,
}
PREDICT_RESPONSE_EXAMPLE: dict[str, Any] = {
    "results": [
        {
            "result": [
                {**_COMMON, "from_name": "bbox", "type": "rectangle", "value": _GEOMETRY},
                {**_COMMON, "from_name": "label", "type": "labels",
                 "value": {**_GEOMETRY, "labels": ["Text"]}},
                {**_COMMON, "from_name": "transcription", "type": "textarea",
                 "value": {**_GEOMETRY, "text": ["HELLO"]}},
            ],
            "score": 0.99,
            "model_version": "easyocr-1.7.2-en-4cbfbf46",
        }
    ]
}  # fmt: skip
