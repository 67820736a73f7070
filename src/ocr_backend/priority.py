"""People first: who is waiting, the images in hand, and a gate in front of the engine.

`priority_of` is the one place that decides a request is a person's; the
job queue and the admission queue both ask it.

A semaphore hands a freed slot to whoever waited longest; this gate hands it
to the most urgent waiter, oldest first among equals. An annotator opening a
task during a 1,000-task job then waits for the image being read now, not
for the images queued before theirs.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Sized
from contextlib import asynccontextmanager
from enum import IntEnum


class Priority(IntEnum):
    """Lower goes first."""

    PEOPLE = 0  # one-task and interactive requests: someone is looking at the screen
    BULK = 1  # many tasks, and the background reading of what missed the deadline


def priority_of(tasks: Sized) -> Priority:
    """One task: someone opened it in Label Studio and waits for it on screen. More: bulk.

    Label Studio asks for one task when an annotator opens it, and for every
    selected task at once on "Retrieve predictions".
    """
    return Priority.PEOPLE if len(tasks) == 1 else Priority.BULK


class PriorityGate:
    """At most `capacity` holders at once; a freed place goes to the most urgent waiter."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for *_, future in self._waiters if not future.done())

    @asynccontextmanager
    async def slot(self, priority: Priority) -> AsyncIterator[None]:
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: Priority) -> None:
        if self.held < self.capacity and not self.waiting:
            self._waiters.clear()  # only the cancelled were left
            self.held += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (int(priority), next(self._order), future))
        try:
            await future  # _release counted us in before waking us
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # handed a place just as we were cancelled: pass it on
            raise

    def _release(self) -> None:
        self.held -= 1
        while self._waiters and self.held < self.capacity:
            *_, future = heapq.heappop(self._waiters)
            if not future.done():
                self.held += 1
                future.set_result(None)


class ImageSlots:
    """At most `capacity` images in hand across all requests; bulk work never takes the last.

    One allowance for everyone keeps the decoded pages at `capacity`
    (THREADS + 2). An allowance per priority held twice that while a job and
    annotators ran together. Bulk work may hold all but one place, so an
    annotator's image is still fetched at once while a job holds the others.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 2:
            raise ValueError("image slots need room for bulk work and one for people")
        self.capacity = capacity
        self._all = asyncio.Semaphore(capacity)
        self._bulk = asyncio.Semaphore(capacity - 1)

    @asynccontextmanager
    async def slot(self, priority: Priority) -> AsyncIterator[None]:
        if priority is Priority.PEOPLE:
            async with self._all:
                yield
        else:
            async with self._bulk, self._all:
                yield
