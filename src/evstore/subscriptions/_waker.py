"""How a follower sleeps: until it is kicked, new events may be readable, or time is up."""

from __future__ import annotations

import asyncio

from evstore.backends.base import StorageBackend

__all__ = ["Waker"]


class Waker:
    """One follower's wake-ups (an engine's or a feed's runner task).

    A kick that lands while the runner is busy (not sleeping) is remembered, so the next
    :meth:`sleep` returns at once: no acknowledgement or new subscriber is left waiting for
    the poll interval. After :meth:`close` every sleep returns at once.
    """

    __slots__ = ("_backend", "_closed", "_future", "_kicked")

    def __init__(self, backend: StorageBackend) -> None:
        self._backend = backend
        self._future: asyncio.Future[None] | None = None
        self._kicked = False
        self._closed = False

    def kick(self) -> None:
        """Wake the runner now, or make its next sleep return at once."""
        self._kicked = True
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)

    def close(self) -> None:
        """Wake the runner for good: it is stopping."""
        self._closed = True
        self.kick()

    async def sleep(self, seconds: float | None, seen: int | None = None) -> None:
        """Sleep until kicked, the backend's change signal moves past ``seen`` (when
        given), or ``seconds`` pass."""
        if self._kicked or self._closed:
            self._kicked = False
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._future = future
        changes = self._backend.changes
        if seen is not None:
            changes.add_waiter(seen, future)
        try:
            await asyncio.wait((future,), timeout=seconds)
        finally:
            changes.discard(future)
            self._future = None
            self._kicked = False
            future.cancel()
