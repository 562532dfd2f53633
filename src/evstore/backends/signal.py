"""Wake-ups for readers that follow the log: a broadcast "something may have changed".

A backend owns one :class:`ChangeSignal` and calls :meth:`ChangeSignal.notify` whenever
new events may be readable: after a local commit (and, on PostgreSQL, after the sequencer
numbered rows), and when a notification from another process arrives. Readers never trust
it for data; they only re-read by position. A reader takes :attr:`generation` *before*
reading and passes it to :meth:`wait`, so a notification that lands between the read and
the wait is never lost.
"""

from __future__ import annotations

import asyncio

__all__ = ["ChangeSignal"]


class ChangeSignal:
    """A generation counter with waiters, used on one event loop."""

    __slots__ = ("_generation", "_waiters")

    def __init__(self) -> None:
        self._generation = 0
        self._waiters: set[asyncio.Future[None]] = set()

    @property
    def generation(self) -> int:
        """Increases with every :meth:`notify`."""
        return self._generation

    def notify(self) -> None:
        """Wake every waiter. Call it on the loop's thread (``call_soon_threadsafe`` else)."""
        self._generation += 1
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def add_waiter(self, seen: int, waiter: asyncio.Future[None]) -> None:
        """Complete ``waiter`` at the next :meth:`notify` (at once if the generation already
        moved past ``seen``). Lets a follower wait for this signal *or* its own wake-ups
        with one future; it must :meth:`discard` the waiter when done waiting."""
        if self._generation != seen:
            if not waiter.done():
                waiter.set_result(None)
            return
        self._waiters.add(waiter)

    def discard(self, waiter: asyncio.Future[None]) -> None:
        """Forget a waiter given to :meth:`add_waiter`."""
        self._waiters.discard(waiter)

    async def wait(self, seen: int, timeout: float | None) -> bool:
        """Wait until the generation moves past ``seen`` or ``timeout`` seconds pass.

        Returns:
            True when notified (at once if it already moved), False on timeout.
        """
        if self._generation != seen:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await asyncio.wait((waiter,), timeout=timeout)
        finally:
            self._waiters.discard(waiter)
            waiter.cancel()
        return self._generation != seen
