"""Task image references -> bytes, over one pooled httpx client behind the network guard.

Knows nothing about OCR or Label Studio. Every failure is an ImageFetchError
whose message says what went wrong with which image and what the user can do.
"""

from __future__ import annotations

import base64
import binascii
import json
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, unquote_to_bytes, urlsplit

import httpx

from ..errors import ImageFetchError, ImageStatusError
from .netguard import AddressRefused, GuardedTransport

MAX_REDIRECTS = 5


def describe(ref: str, limit: int = 80) -> str:
    """A reference short enough for an error message (data: URIs can be megabytes).

    Its query string is left out: a presigned URL's signature is a credential.
    """
    if ref.startswith("data:"):
        return ref.split(",", 1)[0] + ",..."
    ref = redact_query(ref)
    return ref if len(ref) <= limit else ref[: limit - 3] + "..."


def redact_query(url: str) -> str:
    """The URL with its query string, if any, replaced by `?...`."""
    before, sep, _ = url.partition("?")
    return before + "?..." if sep else url


def names_a_pdf(ref: str) -> bool:
    """Whether a reference is a PDF by its name (`.pdf` path, or `.pdf` in a `?d=` query)."""
    if ref.startswith("data:"):
        return ref[5:].lower().startswith("application/pdf")
    parts = urlsplit(ref)
    return any(
        piece.lower().rstrip("/").endswith(".pdf")
        for piece in (parts.path, unquote(parts.query))
        if piece
    )


def decode_data_uri(ref: str) -> bytes:
    header, sep, payload = ref.partition(",")
    if not sep:
        raise ImageFetchError("the data: URI has no ',' before its data", reason="data_uri")
    try:
        if header.endswith(";base64"):
            return base64.b64decode(payload, validate=False)
        return unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as exc:
        raise ImageFetchError(
            f"the data: URI's base64 is broken ({exc})", reason="data_uri"
        ) from None


class ImageFetcher:
    """Fetches image bytes over one shared httpx client (pooled connections)."""

    def __init__(self, client: httpx.AsyncClient, *, max_bytes: int) -> None:
        self.client = client
        self.max_bytes = max_bytes

    def cache_key(self, ref: Any) -> Any:
        """What identifies the image `ref` names, for the decoded-image cache."""
        return ref

    async def fetch(self, ref: str, task_id: int | None = None) -> bytes:
        """The bytes of one task's image; `task_id` is for references that need their task."""
        if not isinstance(ref, str) or not ref.strip():
            raise ImageFetchError(
                f"the image reference {ref!r} is empty or not a string", reason="reference"
            )
        ref = ref.strip()
        if ref.startswith("data:"):
            data = decode_data_uri(ref)
            if len(data) > self.max_bytes:
                raise ImageFetchError(self._too_big(ref), reason="too_large")
            return data
        scheme = urlsplit(ref).scheme.lower()
        if scheme in ("http", "https"):
            return await self.get(ref)
        raise ImageFetchError(
            f"cannot fetch image {describe(ref)}: the scheme {scheme + '://' if scheme else ''!r} "
            "is not supported; use an http(s):// URL or a data: URI",
            reason="scheme",
        )

    async def get(
        self, url: str, headers: dict[str, str] | None = None, auth: httpx.Auth | None = None
    ) -> bytes:
        """GET with redirects followed, stopped while streaming once over the size limit."""
        try:
            async with self.client.stream("GET", url, headers=headers, auth=auth) as response:
                if response.status_code != 200:
                    raise ImageStatusError(
                        f"cannot fetch image {describe(url)}: HTTP {response.status_code} "
                        f"{status_phrase(response.status_code)}",
                        status_code=response.status_code,
                        detail=await error_detail(response),
                        url=str(response.url),
                    )
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > self.max_bytes:
                    raise ImageFetchError(self._too_big(url), reason="too_large")
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise ImageFetchError(self._too_big(url), reason="too_large")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.TooManyRedirects:
            raise ImageFetchError(
                f"cannot fetch image {describe(url)}: more than {MAX_REDIRECTS} redirects",
                reason="redirects",
            ) from None
        except httpx.TimeoutException:
            raise ImageFetchError(
                f"cannot fetch image {describe(url)}: timed out", reason="timeout"
            ) from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, UnicodeError, ValueError) as exc:
            # httpx.InvalidURL is no httpx.HTTPError: a port of 99999, a bad IDNA name.
            raise ImageFetchError(
                f"cannot fetch image {describe(url)}: not a valid URL "
                f"({redact_query(str(exc)) or type(exc).__name__})",
                reason="reference",
            ) from None
        except httpx.HTTPError as exc:
            why = redact_query(str(exc)) or type(exc).__name__
            refused = isinstance(exc.__cause__, AddressRefused)
            raise ImageFetchError(
                f"cannot fetch image {describe(url)}: {why}",
                reason="address_refused" if refused else "connection",
            ) from None

    def _too_big(self, ref: str) -> str:
        return (
            f"image {describe(ref)} is larger than MAX_IMAGE_BYTES={self.max_bytes}; "
            "raise MAX_IMAGE_BYTES or use a smaller image"
        )


async def error_detail(response: httpx.Response, limit: int = 2000) -> str:
    """Label Studio's reason for an error answer: a JSON `detail` of one short line, or "".

    Never the body itself: a task can point at any URL, and its answer must not come
    back in an error message (an API's token, a service's internals).
    """
    if "json" not in response.headers.get("content-type", ""):
        return ""
    head = b""
    async for chunk in response.aiter_bytes():
        head += chunk
        if len(head) >= limit:
            return ""  # a long body is no error reason
    try:
        detail = json.loads(head).get("detail")
    except (ValueError, AttributeError):
        return ""
    if not isinstance(detail, str) or len(detail) > 200 or not detail.isprintable():
        return ""
    return detail


def status_phrase(status: int) -> str:
    """The standard phrase of a status: the server's own reason phrase is its text, not ours."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def new_http_client(timeout: float, *, allow_private: bool = True) -> httpx.AsyncClient:
    """A client whose every connection, redirects included, goes through netguard."""
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=16)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        transport=GuardedTransport(allow_private=allow_private, limits=limits),
        headers={"User-Agent": "ocr-backend"},
    )
