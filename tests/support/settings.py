"""Settings for tests: the same settings with a few changed."""

from __future__ import annotations

from typing import Any

from ocr_backend.settings import Settings


def changed(settings: Settings, **changes: Any) -> Settings:
    """The same settings with some changed, validated as the environment would be."""
    return Settings(**{**settings.model_dump(), **changes})
