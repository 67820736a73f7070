"""The bounded queue in front of the engine.

Without a bound, a busy Label Studio (or several) can pile up requests
faster than EasyOCR reads them, and every waiting request holds its body
and, soon, its decoded images. Instead, a request is admitted whole or
answered 503 at once, before any image is fetched, with a Retry-After that
estimates when the queue will have drained.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..errors import QueueFull, TooManyTasks
from ..metrics import QUEUE_IMAGES, QUEUE_REJECTED

MAX_RETRY_AFTER = 60


class AdmissionQueue:
    """Counts the images (tasks, or pages) admitted and not yet answered, across all requests.

    Runs on the event loop only, so the count needs no lock.
    """

    def __init__(self, limit: int, *, seconds_per_image: Callable[[], float], threads: int):
        self.limit = limit
        self.waiting = 0
        self._seconds_per_image = seconds_per_image
        self._threads = threads

    @contextmanager
    def admit(self, images: int, *, pages: bool = False) -> Iterator[None]:
        """Hold `images` places (tasks, or `pages` of multi-page tasks) until the block ends."""
        if images > self.limit:
            raise TooManyTasks(images, self.limit, pages=pages)
        if self.waiting + images > self.limit:
            QUEUE_REJECTED.inc()
            raise QueueFull(self.waiting, self.limit, self.retry_after())
        self.waiting += images
        QUEUE_IMAGES.inc(images)
        try:
            yield
        finally:
            self.waiting -= images
            QUEUE_IMAGES.dec(images)

    def retry_after(self) -> int:
        """Seconds until the images now waiting are read, at the engine's recent pace."""
        estimate = self.waiting * self._seconds_per_image() / self._threads
        return max(1, min(MAX_RETRY_AFTER, math.ceil(estimate)))
