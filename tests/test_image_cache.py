"""The decoded-image cache: LRU by pixel bytes, one load per image however many ask."""

from __future__ import annotations

import asyncio

import pytest
from PIL import Image

from ocr_backend.images.cache import ImageCache, image_key


def picture(width: int = 10, height: int = 10) -> Image.Image:
    return Image.new("RGB", (width, height), "white")  # 300 bytes at 10x10


class Loads:
    """A loader that counts its calls and can be made slow or failing."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def of(self, ref: str, image: Image.Image | None = None, *, delay: float = 0.0):
        async def load() -> Image.Image:
            self.calls.append(ref)
            await asyncio.sleep(delay)
            if image is None:
                raise OSError(f"{ref} is gone")
            return image

        return load


async def test_a_cached_image_is_not_loaded_again():
    cache, loads = ImageCache(10_000), Loads()
    first = await cache.get("http://a/1.png", loads.of("1", picture()))
    again = await cache.get("http://a/1.png", loads.of("1", picture()))
    assert again is first and loads.calls == ["1"]
    assert (cache.hits, cache.misses, cache.bytes) == (1, 1, 300)


async def test_the_least_recently_used_image_leaves_first_when_bytes_run_out():
    cache, loads = ImageCache(900), Loads()  # room for three 10x10 images
    for ref in ("a", "b", "c"):
        await cache.get(ref, loads.of(ref, picture()))
    await cache.get("a", loads.of("a", picture()))  # a is now the most recent
    await cache.get("d", loads.of("d", picture()))
    assert "b" not in cache and all(ref in cache for ref in ("a", "c", "d"))
    assert cache.bytes == 900


async def test_an_image_larger_than_the_cache_is_served_but_not_kept():
    cache, loads = ImageCache(900), Loads()
    await cache.get("small", loads.of("small", picture()))
    big = await cache.get("big", loads.of("big", picture(20, 20)))
    assert big.size == (20, 20)
    assert "big" not in cache and "small" in cache


async def test_zero_bytes_turns_the_cache_off():
    cache, loads = ImageCache(0), Loads()
    for _ in range(2):
        await cache.get("a", loads.of("a", picture()))
    assert loads.calls == ["a", "a"] and len(cache) == 0


async def test_concurrent_requests_for_one_image_share_one_load():
    cache, loads = ImageCache(10_000), Loads()
    images = await asyncio.gather(
        *(cache.get("same", loads.of("same", picture(), delay=0.05)) for _ in range(5))
    )
    assert loads.calls == ["same"]
    assert all(image is images[0] for image in images)


async def test_a_failed_load_reaches_every_waiter_and_is_not_cached():
    cache, loads = ImageCache(10_000), Loads()
    results = await asyncio.gather(
        cache.get("gone", loads.of("gone", None, delay=0.05)),
        cache.get("gone", loads.of("gone", None, delay=0.05)),
        return_exceptions=True,
    )
    assert [type(r) for r in results] == [OSError, OSError] and loads.calls == ["gone"]
    await cache.get("gone", loads.of("gone", picture()))
    assert loads.calls == ["gone", "gone"] and "gone" in cache


async def test_one_waiter_giving_up_does_not_cancel_the_others_load():
    cache, loads = ImageCache(10_000), Loads()
    impatient = asyncio.ensure_future(cache.get("x", loads.of("x", picture(), delay=0.1)))
    patient = asyncio.ensure_future(cache.get("x", loads.of("x", picture(), delay=0.1)))
    await asyncio.sleep(0.01)
    impatient.cancel()
    assert (await patient).size == (10, 10)
    with pytest.raises(asyncio.CancelledError):
        await impatient
    assert loads.calls == ["x"] and "x" in cache


def test_data_uris_are_keyed_by_their_hash_not_kept_whole():
    uri = "data:image/png;base64," + "A" * 100_000
    key = image_key(uri)
    assert key.startswith("data:sha256:") and len(key) < 100
    assert key == image_key(uri) != image_key(uri + "B")
    assert image_key("http://a/1.png") == "http://a/1.png"
