"""Per-owner limits on long-lived responses (live-log followers, image exports), per API process.

A slot is taken before the response starts, so a caller over its limit gets a 429 instead of a
stream, and given back when the stream ends however it ends: finished, failed, the client gone,
or never started at all (the body is then dropped unread, and the slot with it).
"""

from __future__ import annotations

import collections
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

from core.errors import QuotaExceeded

T = TypeVar("T")
RETRY_AFTER_SECONDS = 5


class Slot:
    """One taken place; `release` is idempotent."""

    def __init__(self, slots: OwnerSlots, owner: str) -> None:
        self._slots = slots
        self._owner = owner
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots._give_back(self._owner)


class OwnerSlots:
    """At most `limit` of one kind of response at once per owner."""

    def __init__(self, what: str, limit: int) -> None:
        self.what = what
        self.limit = limit
        self._taken: collections.Counter[str] = collections.Counter()
        # A blocking stream ends on a worker thread, so the counts change from threads too.
        self._lock = threading.Lock()

    def in_use(self, owner: str) -> int:
        return self._taken[owner]

    def take(self, owner: str) -> Slot:
        with self._lock:
            if self._taken[owner] >= self.limit:
                raise QuotaExceeded(
                    f"{owner} already has {self.limit} {self.what} open, the most allowed at "
                    "once; close one or try again shortly.",
                    retry_after=RETRY_AFTER_SECONDS,
                )
            self._taken[owner] += 1
        return Slot(self, owner)

    def _give_back(self, owner: str) -> None:
        with self._lock:
            self._taken[owner] -= 1
            if self._taken[owner] <= 0:
                del self._taken[owner]


def holding_async(slot: Slot, body: AsyncIterator[T]) -> AsyncIterator[T]:
    """`body`, giving `slot` back when it ends, or when it is dropped without being started."""

    async def wrapped() -> AsyncIterator[T]:
        try:
            async for item in body:
                yield item
        finally:
            slot.release()

    generator = wrapped()
    weakref.finalize(generator, slot.release)
    return generator


def holding(slot: Slot, body: Iterator[T]) -> Iterator[T]:
    """The same for a blocking iterator."""

    def wrapped() -> Iterator[T]:
        try:
            yield from body
        finally:
            slot.release()

    generator = wrapped()
    weakref.finalize(generator, slot.release)
    return generator
