"""Decoded task images kept between calls, because a user draws many boxes on one image.

Interactive pre-annotation sends one /predict per box the user draws; each
would otherwise fetch and decode the same page again. The cache holds
decoded images (Pillow images, or pixel arrays such as images/planes.py's),
least recently used first out, bounded by their pixel bytes. Concurrent
requests for an image not yet in hand share one load instead of fetching it
twice.

Cached images are shared between requests: callers must not modify them.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import numpy as np
from PIL import Image

# A decoded image as the cache holds it; it only needs its size in bytes.
Decoded = Image.Image | np.ndarray


def image_key(ref: str) -> str:
    """The cache key of an image reference; data: URIs, megabytes long, by their hash."""
    if ref.startswith("data:"):
        return "data:sha256:" + hashlib.sha256(ref.encode()).hexdigest()
    return ref


def image_bytes(image: Decoded) -> int:
    """What a decoded image costs in memory."""
    if isinstance(image, np.ndarray):
        return int(image.nbytes)
    return image.width * image.height * len(image.getbands())


class ImageCache:
    """An LRU of decoded images bounded by `max_bytes`; 0 turns it off."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._images: OrderedDict[str, Decoded] = OrderedDict()
        self._loading: dict[str, asyncio.Future[Decoded]] = {}

    def __len__(self) -> int:
        return len(self._images)

    def __contains__(self, ref: str) -> bool:
        return image_key(ref) in self._images

    async def get(self, ref: str, load: Callable[[], Awaitable[Decoded]]) -> Decoded:
        """The image for `ref`: from the cache, from a load already under way, or `load()`.

        A failed load is not cached: the next call tries again.
        """
        if self.max_bytes <= 0 or not isinstance(ref, str):
            return await load()
        key = image_key(ref)
        image = self._images.get(key)
        if image is not None:
            self._images.move_to_end(key)
            self.hits += 1
            return image
        loading = self._loading.get(key)
        if loading is None:
            self.misses += 1
            loading = asyncio.ensure_future(load())
            self._loading[key] = loading
            loading.add_done_callback(lambda done: self._loaded(key, done))
        else:
            self.hits += 1
        # One waiter giving up (its client went away) must not cancel the others' load.
        return await asyncio.shield(loading)

    def _loaded(self, key: str, done: asyncio.Future[Decoded]) -> None:
        self._loading.pop(key, None)
        if not done.cancelled() and done.exception() is None:
            self._store(key, done.result())

    def _store(self, key: str, image: Decoded) -> None:
        size = image_bytes(image)
        if size > self.max_bytes:
            return  # larger than the whole cache: keeping it would evict everything else
        old = self._images.pop(key, None)
        if old is not None:
            self.bytes -= image_bytes(old)
        self._images[key] = image
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, evicted = self._images.popitem(last=False)
            self.bytes -= image_bytes(evicted)

    def clear(self) -> None:
        self._images.clear()
        self.bytes = 0
