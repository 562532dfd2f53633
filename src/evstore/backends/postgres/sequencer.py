"""The in-process loop that drives sequencer cycles and tells appenders their positions.

Every open store runs one :class:`SequencerLoop`. Most appends never meet it: the writer's
statement numbers its batch itself when the sequencer lock is free. An append whose events
were stored without a position (the lock was busy, or a caller's ``conn=`` transaction
wrote them) registers the id of its last event once committed and waits; the loop runs
``evstore_sequence`` (one round trip: number every committed event without a position,
then look the waiters up) for everyone waiting at once, so many appends share a cycle.
Numbering steps of all processes on the database are serialised by the sequencer lock, so
it does not matter which process numbers which events: a waiter whose events another
process numbered is resolved by the lookup part of the same call.

When nobody waits, the loop still runs a cycle every ``poll_interval``: it costs one index
probe when there is nothing to number, and it makes sure events committed by a process that
died before sequencing, or appended inside a caller's transaction (``conn=``), get their
positions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any
from uuid import UUID

from evstore.backends.postgres._errors import storage_error
from evstore.errors import StorageError

__all__ = ["SequencerLoop"]

_log = logging.getLogger(__name__)

ConnectionSource = Callable[[], AbstractAsyncContextManager[Any]]

_MAX_BACKOFF = 0.05
_FAILURES_BEFORE_GIVING_UP = 3
_CLOSE_GRACE = 5.0


class SequencerLoop:
    """Runs sequencer cycles while appenders wait for positions, and every ``poll_interval``.

    Args:
        connection: returns an async context manager yielding a connection per cycle
            (the pool's ``acquire``, or a dedicated session-mode connection).
        statement: the ``evstore_sequence($1)`` call (``$1``: the event ids waited for).
        poll_interval: seconds between idle cycles.
        on_numbered: called after a cycle that found new positions (numbered by this
            cycle, or by another process since the previous one): new events are readable.
    """

    def __init__(
        self,
        connection: ConnectionSource,
        statement: str,
        poll_interval: float,
        on_numbered: Callable[[], None] | None = None,
    ) -> None:
        self._connection = connection
        self._statement = statement
        self._poll_interval = poll_interval
        self._on_numbered = on_numbered
        self._waiters: dict[UUID, list[asyncio.Future[int | None]]] = {}
        self._wake = asyncio.Event()
        self._closing = False
        self.cycles = 0
        """Cycles run by this process (for tests and metrics)."""
        self.last_position = 0
        """The highest position assigned, as of the last cycle."""
        self._task = asyncio.create_task(self._run(), name="evstore-sequencer")

    async def position_of(self, event_id: UUID) -> int | None:
        """Wait until the committed event ``event_id`` has a global position and return it.

        ``None`` means the event was hard deleted before it got one.

        Raises:
            StorageError: cycles kept failing.
        """
        if self._task.done():
            raise StorageError("the PostgreSQL store is closed: no position can be assigned")
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(event_id, []).append(future)
        self._wake.set()
        try:
            return await future
        finally:
            if not future.done() or future.cancelled():
                self._forget(event_id, future)

    def wake(self) -> None:
        """Run a cycle soon even if nobody waits (e.g. after a caller's transaction)."""
        self._wake.set()

    async def close(self) -> None:
        """Resolve the appenders still waiting (for a few seconds at most), then stop."""
        self._closing = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), _CLOSE_GRACE)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _forget(self, event_id: UUID, future: asyncio.Future[int | None]) -> None:
        futures = self._waiters.get(event_id)
        if futures is None:
            return
        with contextlib.suppress(ValueError):
            futures.remove(future)
        if not futures:
            del self._waiters[event_id]

    async def _idle(self) -> None:
        if self._waiters or self._closing:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._poll_interval):
                await self._wake.wait()

    async def _run(self) -> None:
        failures = 0
        backoff = 0.0
        while True:
            await self._idle()
            if self._closing and not self._waiters:
                return
            self._wake.clear()
            waiting = list(self._waiters)
            try:
                async with self._connection() as conn:
                    row = await conn.fetchrow(self._statement, waiting)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                error = storage_error(exc, "assigning global positions")
                _log.warning("evstore sequencer cycle failed: %s", error)
                if failures >= _FAILURES_BEFORE_GIVING_UP or self._closing:
                    self._fail_waiters(waiting, error, exc)
                    failures = 0
                await asyncio.sleep(min(0.05 * 2**failures, 1.0))
                continue
            failures = 0
            self.cycles += 1
            numbered = row[2] > 0 or row[0] > self.last_position
            self.last_position = row[0]
            if numbered and self._on_numbered is not None:
                self._on_numbered()
            if self._resolve(waiting, row[1]):
                backoff = 0.0
            else:
                # Some rows were not visible yet: their cycle started before they committed
                # elsewhere, or their transaction is still open. Try again shortly.
                backoff = min(max(backoff * 2, 0.001), _MAX_BACKOFF)
                await asyncio.sleep(backoff)

    def _resolve(self, waiting: list[UUID], positions: list[int | None]) -> bool:
        """Hand out the positions found; True when every asked-for event was resolved."""
        complete = True
        for event_id, position in zip(waiting, positions, strict=True):
            if position is None:
                complete = False
                continue
            for future in self._waiters.pop(event_id, []):
                if not future.done():
                    future.set_result(None if position < 0 else position)
        return complete

    def _fail_waiters(self, waiting: list[UUID], error: Exception, cause: Exception) -> None:
        if error is not cause:
            error.__cause__ = cause
        for event_id in waiting:
            for future in self._waiters.pop(event_id, []):
                if not future.done():
                    future.set_exception(error)
