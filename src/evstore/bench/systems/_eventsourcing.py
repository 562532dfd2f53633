"""What eventsourcing's PostgreSQL and SQLite targets share: the recorder API calls.

Events go in as ``StoredEvent(originator_id, originator_version, topic, state)`` with the
same pre-encoded JSON ``state`` the raw baselines store; versions start at 1, as the
library's aggregates number them, and the (originator, version) key is its
optimistic-concurrency check.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from eventsourcing.persistence import ApplicationRecorder, StoredEvent

from evstore.bench._data import EVENT_TYPE, PAYLOAD_BYTES
from evstore.bench._timing import SyncOperation
from evstore.bench.systems._base import ThreadTarget

__all__ = ["EventsourcingTarget"]

TOPIC = f"bench:{EVENT_TYPE}"
FILL_CHUNK = 1000


def _events(originator: uuid.UUID, first: int, count: int) -> list[StoredEvent]:
    return [StoredEvent(originator, v, TOPIC, PAYLOAD_BYTES) for v in range(first, first + count)]


class EventsourcingTarget(ThreadTarget):
    """An opened application recorder; subclasses build it in ``open``."""

    label = "eventsourcing"
    role = "peer"

    def __init__(self) -> None:
        self._recorder: ApplicationRecorder | None = None
        self._close: Callable[[], None] | None = None

    @property
    def recorder(self) -> ApplicationRecorder:
        if self._recorder is None:
            raise RuntimeError("target not open")
        return self._recorder

    async def close(self) -> None:
        if self._close is not None:
            self._close()
        self._close = self._recorder = None

    def appender(self, size: int) -> SyncOperation:
        recorder = self.recorder
        originator = uuid.uuid4()
        version = [0]

        def append() -> None:
            recorder.insert_events(_events(originator, version[0] + 1, size))
            version[0] += size

        return append

    def reader(self, stream: str) -> SyncOperation:
        recorder = self.recorder
        originator = uuid.UUID(stream)

        def read() -> None:
            recorder.select_events(originator)

        return read

    async def fill(self, streams: Sequence[str], size: int) -> None:
        for stream in streams:
            originator = uuid.UUID(stream)
            for first in range(1, size + 1, FILL_CHUNK):
                count = min(FILL_CHUNK, size - first + 1)
                self.recorder.insert_events(_events(originator, first, count))

    async def scan_all(self, page: int) -> int:
        count, after = 0, 0
        while True:
            notifications = self.recorder.select_notifications(
                after, page, inclusive_of_start=False
            )
            count += len(notifications)
            if len(notifications) < page:
                return count
            after = notifications[-1].id
