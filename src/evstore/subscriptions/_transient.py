"""Transient subscriptions: events appended after subscribing, one batch per append.

A feed follows ``$all`` from the position that was the end of the log when it subscribed,
reads by position (notifications only wake it), and cuts what it reads into the appends
they came from: consecutive events of one stream with consecutive versions and the same
``created_at`` (every event of an append shares its time; two appends never do unless
they write the same stream in the same microsecond). Events come as ``$all`` reads them
(``event_number`` is the global position, as in the Elixir EventStore, whose transient
subscriptions publish the events read from ``$all``); links into a stream are not
followed (they are not appends). It keeps at most
:data:`MAX_WAITING_BATCHES` batches for a slow consumer and then stops reading until the
consumer catches up, so memory stays bounded and nothing is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from evstore._types import ALL_STREAM, RecordedEvent
from evstore.backends.base import StorageBackend
from evstore.errors import EventStoreTimeoutError, StorageError
from evstore.subscriptions._engine import ReadEvents
from evstore.subscriptions._inbox import Inbox
from evstore.subscriptions._waker import Waker

__all__ = ["MAX_WAITING_BATCHES", "TransientFeed", "appends_of"]

log = logging.getLogger("evstore.subscriptions")

PAGE_SIZE = 1000
MAX_WAITING_BATCHES = 1000


def appends_of(events: list[RecordedEvent]) -> list[list[RecordedEvent]]:
    """Cut events read from ``$all`` into the appends that wrote them."""
    groups: list[list[RecordedEvent]] = []
    previous: RecordedEvent | None = None
    for event in events:
        if (
            previous is not None
            and event.stream_id == previous.stream_id
            and event.stream_version == previous.stream_version + 1
            and event.created_at == previous.created_at
        ):
            groups[-1].append(event)
        else:
            groups.append([event])
        previous = event
    return groups


class TransientFeed:
    """Follows ``$all`` for one transient subscriber."""

    def __init__(
        self,
        *,
        stream_id: str,
        selector: Callable[[RecordedEvent], Any] | None,
        mapper: Callable[[RecordedEvent], Any] | None,
        after_position: int,
        backend: StorageBackend,
        read: ReadEvents,
        on_stopped: Callable[[TransientFeed], None],
    ) -> None:
        self.stream_id = stream_id
        self._selector = selector
        self._mapper = mapper
        self._cursor = after_position
        self._backend = backend
        self._read = read
        self._on_stopped = on_stopped
        self.inbox = Inbox()
        self._held: list[RecordedEvent] = []
        self._stopping = False
        self._waker = Waker(backend)
        self.inbox.on_take = self._waker.kick
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"evstore-transient-{stream_id}"
        )

    async def stop(self) -> None:
        """Stop following; the consumer's iteration ends. Idempotent."""
        self._stopping = True
        self._waker.close()
        if self._task is not asyncio.current_task():
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        error: BaseException | None = None
        try:
            await self._backend.watch_changes()
            while not self._stopping:
                if len(self.inbox) >= MAX_WAITING_BATCHES:
                    await self._waker.sleep(self._backend.poll_interval, None)  # woken by a take
                    continue
                seen = self._backend.changes.generation
                try:
                    events = await self._read(ALL_STREAM, self._cursor + 1, PAGE_SIZE)
                except (StorageError, EventStoreTimeoutError) as exc:
                    log.warning("transient subscription on %r: %s; retrying", self.stream_id, exc)
                    await self._waker.sleep(self._backend.poll_interval, None)
                    continue
                full = len(events) == PAGE_SIZE
                if events:
                    self._cursor = events[-1].event_number
                    events = self._held + events
                    appends = appends_of(events)
                    # A full page may end inside an append: hold its last group back until
                    # the next read shows where that append ends.
                    self._held = appends.pop() if full else []
                    self._deliver(appends)
                elif self._held:
                    self._deliver([self._held])
                    self._held = []
                if not full:
                    await self._waker.sleep(self._backend.poll_interval, seen)
        except Exception as exc:  # the subscriber's selector or mapper failed
            log.error("transient subscription on %r failed: %r", self.stream_id, exc)
            error = exc
        finally:
            self._stopping = True
            self.inbox.close(error)
            self._on_stopped(self)

    def _deliver(self, appends: list[list[RecordedEvent]]) -> None:
        selector, mapper = self._selector, self._mapper
        for append in appends:
            if self.stream_id != ALL_STREAM and append[0].stream_id != self.stream_id:
                continue
            if selector is not None:
                append = [e for e in append if selector(e)]
                if not append:
                    continue
            self.inbox.put(append if mapper is None else [mapper(e) for e in append])
