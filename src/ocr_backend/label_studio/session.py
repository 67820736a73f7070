"""The commands' way into Label Studio: LABEL_STUDIO_HOST and its token, with the fetch limits.

`ocr-backend annotate` and `ocr-backend export` both read a project through
its API and fetch its images; this opens both the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from ..images.fetch import new_http_client
from ..settings import Settings
from .client import LabelStudioClient
from .storage import LabelStudio, LabelStudioImageFetcher


@dataclass(frozen=True)
class LabelStudioSession:
    http: httpx.AsyncClient
    fetcher: LabelStudioImageFetcher
    label_studio: LabelStudio
    client: LabelStudioClient


@asynccontextmanager
async def open_label_studio(settings: Settings) -> AsyncIterator[LabelStudioSession]:
    """An HTTP client with the settings' fetch limits, and Label Studio through it."""
    http = new_http_client(settings.fetch_timeout, allow_private=settings.allow_private_networks)
    async with http:
        fetcher = LabelStudioImageFetcher(
            http, max_bytes=settings.max_image_bytes, settings=settings
        )
        label_studio = fetcher.connect(None)
        assert label_studio.host is not None
        client = LabelStudioClient(http, label_studio.host, label_studio.auth)
        yield LabelStudioSession(http, fetcher, label_studio, client)
