"""evstore itself, through its public façade, on PostgreSQL or SQLite.

Appends state the exact expected version (the optimistic-concurrency check every
event-sourced aggregate makes, as eventsourcing's recorder does with its unique key), and
give ``EventData`` objects with a dict payload, so the cost of validation, serialisation
and, on reads, deserialisation into ``RecordedEvent`` objects is included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from evstore import AsyncEventStore, EventData
from evstore.bench._data import EVENT_TYPE, PAYLOAD, new_stream_id
from evstore.bench._timing import AsyncOperation
from evstore.bench.systems._base import AsyncTarget

__all__ = ["EvstoreTarget"]

FILL_TASKS = 8
FILL_CHUNK = 1000


class EvstoreTarget(AsyncTarget):
    """``AsyncEventStore(url, **options)`` with its default settings unless ``options`` say."""

    label = "evstore"
    role = "subject"

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self.options = options
        self._store: AsyncEventStore | None = None

    @property
    def store(self) -> AsyncEventStore:
        if self._store is None:
            raise RuntimeError("target not open")
        return self._store

    async def open(self) -> None:
        if self.url.startswith("postgres") and self.options.get("auto_init", True):
            await AsyncEventStore.create(self.url, **self.options)
        self._store = await AsyncEventStore(self.url, **self.options).open()

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()
            self._store = None

    def appender(self, size: int) -> AsyncOperation:
        store = self.store
        stream = new_stream_id()
        version = [0]

        async def append() -> None:
            events = [EventData(EVENT_TYPE, PAYLOAD) for _ in range(size)]
            result = await store.append_to_stream(stream, version[0], events)
            version[0] = result.stream_version

        return append

    def reader(self, stream: str) -> AsyncOperation:
        store = self.store

        async def read() -> None:
            await store.read_stream_forward(stream)

        return read

    async def fill(self, streams: Sequence[str], size: int) -> None:
        store = self.store
        queue = list(streams)

        async def filler() -> None:
            while queue:
                stream = queue.pop()
                for start in range(0, size, FILL_CHUNK):
                    count = min(FILL_CHUNK, size - start)
                    events = [EventData(EVENT_TYPE, PAYLOAD) for _ in range(count)]
                    await store.append_to_stream(stream, start, events)

        await asyncio.gather(*(filler() for _ in range(FILL_TASKS)))

    async def scan_all(self, page: int) -> int:
        count = 0
        async for _event in self.store.stream_all_forward(batch_size=page):
            count += 1
        return count
