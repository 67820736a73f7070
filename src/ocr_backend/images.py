"""Task image references -> bytes -> decoded, EXIF-oriented RGB images.

Knows nothing about OCR. Every failure is an ImageError whose message says
what went wrong with which image and what the user can do about it.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from urllib.parse import unquote_to_bytes, urlsplit

import httpx
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_REDIRECTS = 5
# Pillow's process-wide bomb guard is replaced by decode_image's MAX_IMAGE_PIXELS check,
# which reads the header and refuses before any pixel is decoded.
Image.MAX_IMAGE_PIXELS = None


class ImageError(Exception):
    """A task's image could not be had; the message is shown to the user."""


class ImageFetchError(ImageError):
    pass


class ImageStatusError(ImageFetchError):
    """The server answered, but not with the image: its status and the start of its answer."""

    def __init__(self, message: str, *, status_code: int, detail: str = "", url: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail
        self.url = url  # the URL that answered, after redirects


class ImageDecodeError(ImageError):
    pass


def describe(ref: str, limit: int = 80) -> str:
    """A reference short enough for an error message (data: URIs can be megabytes)."""
    if ref.startswith("data:"):
        return ref.split(",", 1)[0] + ",..."
    return ref if len(ref) <= limit else ref[: limit - 3] + "..."


def decode_data_uri(ref: str) -> bytes:
    header, sep, payload = ref.partition(",")
    if not sep:
        raise ImageFetchError("the data: URI has no ',' before its data")
    try:
        if header.endswith(";base64"):
            return base64.b64decode(payload, validate=False)
        return unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as exc:
        raise ImageFetchError(f"the data: URI's base64 is broken ({exc})") from None


class ImageFetcher:
    """Fetches image bytes over one shared httpx client (pooled connections)."""

    def __init__(self, client: httpx.AsyncClient, *, max_bytes: int) -> None:
        self.client = client
        self.max_bytes = max_bytes

    async def fetch(self, ref: str, task_id: int | None = None) -> bytes:
        """The bytes of one task's image; `task_id` is for references that need their task."""
        if not isinstance(ref, str) or not ref.strip():
            raise ImageFetchError(f"the image reference {ref!r} is empty or not a string")
        ref = ref.strip()
        if ref.startswith("data:"):
            data = decode_data_uri(ref)
            if len(data) > self.max_bytes:
                raise ImageFetchError(self._too_big(ref))
            return data
        scheme = urlsplit(ref).scheme.lower()
        if scheme in ("http", "https"):
            return await self.get(ref)
        raise ImageFetchError(
            f"cannot fetch image {describe(ref)}: the scheme {scheme + '://' if scheme else ''!r} "
            "is not supported; use an http(s):// URL or a data: URI"
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
                        f"{response.reason_phrase}",
                        status_code=response.status_code,
                        detail=await error_detail(response),
                        url=str(response.url),
                    )
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > self.max_bytes:
                    raise ImageFetchError(self._too_big(url))
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise ImageFetchError(self._too_big(url))
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.TooManyRedirects:
            raise ImageFetchError(
                f"cannot fetch image {describe(url)}: more than {MAX_REDIRECTS} redirects"
            ) from None
        except httpx.TimeoutException:
            raise ImageFetchError(f"cannot fetch image {describe(url)}: timed out") from None
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise ImageFetchError(f"cannot fetch image {describe(url)}: {reason}") from None

    def _too_big(self, ref: str) -> str:
        return (
            f"image {describe(ref)} is larger than MAX_IMAGE_BYTES={self.max_bytes}; "
            "raise MAX_IMAGE_BYTES or use a smaller image"
        )


async def error_detail(response: httpx.Response, limit: int = 2000) -> str:
    """The start of an error answer, its JSON `detail` if it has one: the server's own reason."""
    head = b""
    async for chunk in response.aiter_bytes():
        head += chunk
        if len(head) >= limit:
            break
    text = head[:limit].decode("utf-8", errors="replace").strip()
    try:
        detail = json.loads(text).get("detail")
    except (ValueError, AttributeError):
        detail = None
    text = str(detail) if detail else " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."


def new_http_client(timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        headers={"User-Agent": "ocr-backend"},
    )


def decode_image(data: bytes, *, max_pixels: int) -> Image.Image:
    """Bytes -> 8-bit RGB image as displayed: EXIF orientation applied, transparency on white.

    The pixel count is checked from the header, before any pixel is decoded.
    """
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        start = f", starts with {data[:16]!r}" if data else ""
        raise ImageDecodeError(
            f"the file is not an image Pillow can read ({len(data)} bytes{start})"
        ) from None
    except OSError as exc:
        raise ImageDecodeError(f"the image cannot be decoded: {exc}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"the image is {width}x{height} pixels, more than MAX_IMAGE_PIXELS={max_pixels}; "
            "refused before decoding. Raise MAX_IMAGE_PIXELS or use a smaller image"
        )
    try:
        image.load()
        image = ImageOps.exif_transpose(image) or image
        return to_rgb(image)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(f"the image is truncated or corrupt: {exc}") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB, scaling 16/32-bit grey instead of clipping it to white."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        grey = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or grey.max() > 255 else 255.0
        scaled = np.clip(grey / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(scaled, mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
