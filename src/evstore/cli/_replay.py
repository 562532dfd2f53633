"""Replaying a checked export file into an empty store, so every number comes out the same.

Events go in file (``$all``) order: each run of events of one stream that share a
``created_at`` and follow each other becomes one append, with the expected version set to
the version before it and the original time passed as ``created_at=``. Before a run, the
stream is first brought up to the version just below it: the links, and the entries the
file could not hold (see :mod:`._import_plan`), in event-number order. A link's event always
comes earlier in ``$all`` than the stream's next own event, so it is already there. After
the last event every stream is brought up to its final version, in the order the file
names them, and the soft-deleted ones are deleted, with their version as expected version.
Every write carries an expected version: a concurrent writer makes the import fail, never
drift.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import IO
from uuid import UUID

from evstore import NO_STREAM, AsyncEventStore, EventData
from evstore.cli._import_plan import ImportPlan, StreamPlan, read_records
from evstore.cli._records import ImportedEvent

__all__ = ["BATCH", "EMPTY_SLOT_TYPE", "Replay"]

BATCH = 1000
"""The most events one append, or ids one link, carries."""

EMPTY_SLOT_TYPE = "$evstore-empty-slot"
"""Type of the scratch events linked, then hard-deleted, to recreate unreadable entries."""


class Replay:
    """Writes one checked file into one empty store; ``update`` gets the entries written."""

    def __init__(
        self, store: AsyncEventStore, plan: ImportPlan, update: Callable[[int], None]
    ) -> None:
        self._store = store
        self._plan = plan
        self._update = update
        self._written = 0
        self._versions: dict[str, int] = {}
        # Where the search for stand-in events of each deleted stream goes on in $all.
        self._filler_from: dict[str, int] = {}

    async def run(self, source: IO[bytes]) -> None:
        """Replay every record of ``source`` (checked by ``check_file``)."""
        await self._replay_events(source)
        for stream_id, plan in self._plan.streams.items():
            await self._bring_up(stream_id, plan.final)
        for stream_id, plan in self._plan.streams.items():
            if plan.deleted:
                await self._store.delete_stream(stream_id, plan.final)

    def _progress(self, written: int) -> None:
        self._written += written
        self._update(self._written)

    async def _replay_events(self, source: IO[bytes]) -> None:
        batch: list[EventData] = []
        key: tuple[str, datetime] | None = None
        first_version = next_version = 0

        async def flush() -> None:
            if key is None or not batch:
                return
            stream_id, created_at = key
            await self._bring_up(stream_id, first_version - 1)
            await self._store.append_to_stream(
                stream_id, first_version - 1, batch, created_at=created_at
            )
            self._versions[stream_id] = first_version - 1 + len(batch)
            self._progress(len(batch))
            batch.clear()

        for _, record in read_records(source):
            if not isinstance(record, ImportedEvent):
                continue
            record_key = (record.stream_id, record.created_at)
            if record_key != key or record.stream_version != next_version or len(batch) >= BATCH:
                await flush()
                key = record_key
                first_version = record.stream_version
            batch.append(record.event)
            next_version = record.stream_version + 1
        await flush()

    async def _bring_up(self, stream_id: str, upto: int) -> None:
        """Write the stream's links and stand-ins up to version ``upto``."""
        plan = self._plan.streams[stream_id]
        version = self._versions.get(stream_id, 0)
        while version < upto:
            # The run of entries of one sort (links, or entries the file lacks) from here.
            is_link = version + 1 in plan.links
            end = version + 1
            while end < upto and (end + 1 in plan.links) == is_link and end - version < BATCH:
                end += 1
            if is_link:
                ids = [plan.links[number] for number in range(version + 1, end + 1)]
                await self._store.link_to_stream(stream_id, version, ids)
            elif plan.deleted:
                ids = await self._stand_ins(stream_id, plan, end - version)
                await self._store.link_to_stream(stream_id, version, ids)
            else:
                await self._empty_slots(stream_id, version, end - version)
            self._progress(end - version)
            version = end
            self._versions[stream_id] = version

    async def _stand_ins(self, stream_id: str, plan: StreamPlan, count: int) -> list[UUID]:
        """``count`` events already in the store that the deleted stream may link.

        Nobody can read a soft-deleted stream, so which events stand in for its lost links
        does not show; they only need to exist and not be in the stream already.
        """
        taken = set(plan.links.values())
        chosen: list[UUID] = []
        position = self._filler_from.get(stream_id, 0)
        while len(chosen) < count:
            events = await self._store.read_all_streams_forward(position, BATCH)
            if not events:
                raise ValueError(f"no event left to stand in for {stream_id!r}'s links")
            for event in events:
                position = event.position + 1
                if event.stream_id != stream_id and event.event_id not in taken:
                    chosen.append(event.event_id)
                    if len(chosen) == count:
                        break
        self._filler_from[stream_id] = position
        return chosen

    async def _empty_slots(self, stream_id: str, version: int, count: int) -> None:
        """Add ``count`` entries that reads skip: links to events hard-deleted at once."""
        scratch = f"$evstore-import-{uuid.uuid4().hex}"
        events = [EventData(EMPTY_SLOT_TYPE, None) for _ in range(count)]
        await self._store.append_to_stream(scratch, NO_STREAM, events)
        await self._store.link_to_stream(stream_id, version, [event.event_id for event in events])
        # Hard-deleting the scratch stream empties the entries that link its events, as a
        # hard delete did to the original entries; $all keeps a gap, as in the source.
        await self._store.delete_stream(scratch, count, hard=True)
