"""The catch-up reader behind ``Streams.Read`` subscriptions.

A subscription reads history in pages after an exclusive start, says it has caught up when a
read reaches the end, then keeps reading from where it stopped whenever the backend's change
signal fires (or every ``poll_interval`` seconds, in case a notification was missed). Live
events are simply the next reads: nothing is pushed into a buffer that could overflow, so
there is no "fell behind", and a reader holds at most one page in memory. The caller's
``async for`` pulls items one at a time, so a slow client slows the reads down instead of
piling events up on the server.

Items are backend rows (see :data:`evstore.backends.base.EventRow`) plus two markers:
:class:`CaughtUp` and, for filtered ``$all`` subscriptions, :class:`Checkpoint`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Literal

from evstore.backends.base import EventRow
from evstore.server.dialect import INT64_MAX, Dialect, StreamDeleted, StreamNotFound
from evstore.server.filters import EventFilter

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "END",
    "START",
    "CaughtUp",
    "Checkpoint",
    "FollowItem",
    "StartPoint",
    "follow_all",
    "follow_stream",
]

DEFAULT_PAGE_SIZE = 256
START: Literal["start"] = "start"
END: Literal["end"] = "end"

StartPoint = Literal["start", "end"] | int
"""Where a subscription starts, exclusively: ``"start"`` (everything), ``"end"`` (only
events appended from now on) or a revision / ``$all`` position (events after it)."""


@dataclass(frozen=True, slots=True)
class CaughtUp:
    """The subscription has delivered everything up to the end of the log.

    Attributes:
        revision: for a stream, the last revision seen (``None`` when it has no events).
        position: for ``$all``, the last position scanned (``None`` when the log is empty).
    """

    revision: int | None = None
    position: int | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A filtered ``$all`` subscription has scanned the log up to ``position`` (inclusive):
    resuming after it misses no matching event."""

    position: int


FollowItem = EventRow | CaughtUp | Checkpoint


async def _wait_for_change(dialect: Dialect, seen: int, stop: asyncio.Event | None) -> None:
    """Until the change signal moves past ``seen``, ``stop`` is set, or one poll interval."""
    backend = dialect.backend
    if stop is None:
        await backend.changes.wait(seen, backend.poll_interval)
        return
    if stop.is_set():
        return
    changed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    backend.changes.add_waiter(seen, changed)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait(
            (changed, stopped), timeout=backend.poll_interval, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        backend.changes.discard(changed)
        changed.cancel()
        stopped.cancel()


async def follow_stream(
    dialect: Dialect,
    stream: str,
    start: StartPoint,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    stop: asyncio.Event | None = None,
) -> AsyncGenerator[FollowItem, None]:
    """Rows of ``stream`` after ``start`` (a 0-based revision), then :class:`CaughtUp`, then
    rows appended later, until ``stop`` is set.

    A stream that does not exist yet (or is soft deleted) is waited for. The iteration
    ends with :class:`StreamDeleted` when the stream is tombstoned.
    """
    backend = dialect.backend
    await backend.watch_changes()
    if start == START:
        last = 0  # evstore version of the last event delivered
    elif start == END:
        last = await _current_version(dialect, stream)
    else:
        # Beyond the largest version a store can hold, nothing will ever come; stay in range.
        last = min(int(start) + 1, INT64_MAX - 1)
    caught_up = False
    while stop is None or not stop.is_set():
        seen = backend.changes.generation
        try:
            rows = await dialect.stream_page(stream, last + 1, page_size, forward=True)
        except StreamNotFound:
            rows = []
        for row in rows:
            last = row[0]
            yield row
        if len(rows) < page_size:
            if not caught_up:
                caught_up = True
                yield CaughtUp(revision=last - 1 if last > 0 else None)
            await _wait_for_change(dialect, seen, stop)


async def _current_version(dialect: Dialect, stream: str) -> int:
    version, tombstoned = await dialect.version_of(stream)
    if tombstoned:
        raise StreamDeleted(stream)
    return version


async def follow_all(
    dialect: Dialect,
    start: StartPoint,
    *,
    event_filter: EventFilter | None = None,
    checkpoint_interval: int | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    stop: asyncio.Event | None = None,
) -> AsyncGenerator[FollowItem, None]:
    """Rows of ``$all`` after ``start`` (a position) that pass ``event_filter``, then
    :class:`CaughtUp`, then later rows, until ``stop`` is set.

    With ``checkpoint_interval``, a :class:`Checkpoint` follows every that many rows
    scanned (matched or not), and one precedes :class:`CaughtUp` (at the last position
    scanned, unless one was just sent there).
    """
    backend = dialect.backend
    await backend.watch_changes()
    if start == START:
        last = 0
    elif start == END:
        last = await dialect.last_position()
    else:
        last = min(int(start), INT64_MAX - 1)
    scanned = 0
    checkpointed = last
    caught_up = False
    while stop is None or not stop.is_set():
        seen = backend.changes.generation
        rows = await dialect.all_page(last + 1, page_size, forward=True)
        for row in rows:
            last = row[4]
            if event_filter is None or event_filter.matches(row[2], row[5]):
                yield row
            if checkpoint_interval is not None:
                scanned += 1
                if scanned >= checkpoint_interval:
                    scanned = 0
                    checkpointed = last
                    yield Checkpoint(last)
        if len(rows) < page_size:
            if not caught_up:
                caught_up = True
                if checkpoint_interval is not None and last > 0 and checkpointed != last:
                    checkpointed = last
                    scanned = 0
                    yield Checkpoint(last)
                yield CaughtUp(position=last if last > 0 else None)
            await _wait_for_change(dialect, seen, stop)
