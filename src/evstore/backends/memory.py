"""An in-process backend: everything in Python dicts and lists, nothing on disk.

It is the reference implementation of the storage contract (short enough to read in one
sitting) and the fast backend for unit tests of user code. Every method runs without an
``await`` between its check and its write, so each is atomic on the event loop: that is the
whole concurrency story.

``memory://`` opens a fresh, private database; ``memory://name`` opens the process-wide
database called ``name``, so several stores can share one.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from evstore._types import ALL_STREAM, AppendResult, ExpectedVersion, Page, StreamInfo
from evstore.backends.base import (
    EventRow,
    NewEvent,
    ParkedEntry,
    SortBy,
    SortDir,
    StorageBackend,
    StoredSnapshot,
    SubscriptionLock,
    SubscriptionRecord,
    refuse_conn,
)
from evstore.backends.rules import (
    UNRESTRICTED,
    StreamState,
    VisibleRange,
    check_delete,
    check_expected_version,
    check_new_links,
    is_metadata_stream,
    metadata_stream_of,
    total_pages,
    visible_range,
)
from evstore.backends.signal import ChangeSignal
from evstore.errors import (
    DuplicateEventError,
    EventNotFoundError,
    SnapshotNotFoundError,
    StreamDeletedError,
    StreamNotFoundError,
)

__all__ = ["MemoryBackend"]

SCHEMA_VERSION = "1"


@dataclass(slots=True)
class _Event:
    event_id: UUID
    stream_id: str
    stream_version: int
    position: int
    event_type: str
    data: bytes
    metadata: bytes | None
    flags: int
    correlation_id: UUID | None
    causation_id: UUID | None
    created_at: datetime

    def row(self, event_number: int) -> EventRow:
        return (
            event_number,
            self.event_id,
            self.stream_id,
            self.stream_version,
            self.position,
            self.event_type,
            self.data,
            self.metadata,
            self.flags,
            self.correlation_id,
            self.causation_id,
            self.created_at,
        )


@dataclass(slots=True)
class _Stream:
    key: int
    stream_id: str
    created_at: datetime
    deleted_at: datetime | None = None
    # entries[i] is event number i + 1; None where a hard delete removed the event.
    entries: list[_Event | None] = field(default_factory=list)

    @property
    def version(self) -> int:
        return len(self.entries)

    def state(self) -> StreamState:
        return StreamState(self.version, self.deleted_at is not None)

    def info(self) -> StreamInfo:
        return StreamInfo(
            self.stream_id,
            self.version,
            self.created_at,
            self.deleted_at,
            "deleted" if self.deleted_at else "created",
        )


@dataclass(slots=True)
class _Database:
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    streams: dict[str, _Stream] = field(default_factory=dict)
    events: dict[UUID, _Event] = field(default_factory=dict)
    # all_log[p - 1] is global position p; None where a hard delete removed it.
    all_log: list[_Event | None] = field(default_factory=list)
    snapshots: dict[str, StoredSnapshot] = field(default_factory=dict)
    next_key: int = 1
    subscriptions: dict[tuple[str, str], SubscriptionRecord] = field(default_factory=dict)
    parked: dict[tuple[str, str], dict[int, ParkedEntry]] = field(default_factory=dict)
    locks: set[tuple[str, str]] = field(default_factory=set)
    changes: ChangeSignal = field(default_factory=ChangeSignal)


class _MemoryLock(SubscriptionLock):
    """Ownership within this process (a memory database lives in one process)."""

    def __init__(self, db: _Database, key: tuple[str, str]) -> None:
        self._db = db
        self._key = key
        self._released = False

    @property
    def lost(self) -> bool:
        return False

    async def wait_lost(self) -> None:
        await asyncio.get_running_loop().create_future()  # a memory lock is never lost

    async def release(self) -> None:
        if not self._released:
            self._released = True
            self._db.locks.discard(self._key)


_NAMED: dict[str, _Database] = {}


class MemoryBackend(StorageBackend):
    """Keeps one event store in memory."""

    def __init__(self, name: str | None = None, *, enable_hard_deletes: bool = False) -> None:
        self._name = name or None
        self.enable_hard_deletes = enable_hard_deletes
        self._db: _Database | None = None

    # -- lifecycle -------------------------------------------------------------------

    def _database(self) -> _Database:
        if self._db is None:
            if self._name is None:
                self._db = _Database()
            else:
                self._db = _NAMED.setdefault(self._name, _Database())
        return self._db

    async def open(self, *, auto_init: bool = True) -> None:
        self._database()

    async def close(self) -> None:
        self._db = None

    async def create(self) -> str:
        self._database()
        return "The in-memory database is ready."

    async def init(self) -> str:
        self._database()
        return "The in-memory database has been initialised."

    async def migrate(self) -> str:
        return "The in-memory database is already migrated."

    async def drop(self) -> str:
        if self._name is not None:
            _NAMED.pop(self._name, None)
        self._db = None
        return "The in-memory database has been dropped."

    async def reset(self) -> str:
        db = self._database()
        fresh = _Database()
        db.streams, db.events, db.all_log = fresh.streams, fresh.events, fresh.all_log
        db.snapshots, db.next_key = fresh.snapshots, fresh.next_key
        db.subscriptions, db.parked = fresh.subscriptions, fresh.parked
        return "The in-memory database has been reset."

    async def schema_version(self) -> str | None:
        return SCHEMA_VERSION

    # -- writing ---------------------------------------------------------------------

    def _stream(self, stream_id: str) -> _Stream | None:
        return self._database().streams.get(stream_id)

    def _create_stream(self, stream_id: str, created_at: datetime) -> _Stream:
        db = self._database()
        stream = _Stream(db.next_key, stream_id, created_at)
        db.next_key += 1
        db.streams[stream_id] = stream
        return stream

    async def append(
        self,
        stream_id: str,
        expected_version: ExpectedVersion | int,
        events: Sequence[NewEvent],
        created_at: datetime,
        *,
        conn: Any = None,
    ) -> AppendResult:
        refuse_conn(conn)
        db = self._database()
        stream = self._stream(stream_id)
        check_expected_version(stream_id, expected_version, stream.state() if stream else None)
        if not events:
            return AppendResult(stream.version if stream else 0, None)
        seen: set[UUID] = set()
        for event in events:
            if event.event_id in db.events or event.event_id in seen:
                raise DuplicateEventError(
                    f"event {event.event_id} is already stored",
                    stream_id=stream_id,
                    event_id=event.event_id,
                )
            seen.add(event.event_id)
        if stream is None:
            stream = self._create_stream(stream_id, created_at)
        for event in events:
            stored = _Event(
                event.event_id,
                stream_id,
                stream.version + 1,
                len(db.all_log) + 1,
                event.event_type,
                event.data,
                event.metadata,
                event.flags,
                event.correlation_id,
                event.causation_id,
                created_at,
            )
            stream.entries.append(stored)
            db.all_log.append(stored)
            db.events[event.event_id] = stored
        db.changes.notify()
        return AppendResult(stream.version, len(db.all_log))

    async def link(
        self,
        stream_id: str,
        expected_version: ExpectedVersion | int,
        event_ids: Sequence[UUID],
        *,
        conn: Any = None,
    ) -> AppendResult:
        refuse_conn(conn)
        db = self._database()
        stream = self._stream(stream_id)
        check_expected_version(stream_id, expected_version, stream.state() if stream else None)
        if not event_ids:
            return AppendResult(stream.version if stream else 0, None)
        missing = [event_id for event_id in event_ids if event_id not in db.events]
        if missing:
            raise EventNotFoundError(
                f"cannot link unknown event ids: {', '.join(map(str, missing))}",
                stream_id=stream_id,
                event_ids=missing,
            )
        present = {e.event_id for e in stream.entries if e is not None} if stream else set()
        check_new_links(stream_id, event_ids, present)
        if stream is None:
            stream = self._create_stream(stream_id, datetime.now(UTC))
        stream.entries.extend(db.events[event_id] for event_id in event_ids)
        db.changes.notify()
        return AppendResult(stream.version, stream.entries[-1].position)  # type: ignore[union-attr]

    async def delete_stream(
        self,
        stream_id: str,
        expected_version: ExpectedVersion | int,
        *,
        hard: bool,
        conn: Any = None,
    ) -> None:
        refuse_conn(conn)
        stream = self._stream(stream_id)
        check_delete(
            stream_id,
            expected_version,
            stream.state() if stream else None,
            hard=hard,
            hard_deletes_enabled=self.enable_hard_deletes,
        )
        assert stream is not None
        if not hard:
            stream.deleted_at = datetime.now(UTC)
            return
        db = self._database()
        gone = {e.event_id for e in stream.entries if e is not None and e.stream_id == stream_id}
        del db.streams[stream_id]
        for event_id in gone:
            event = db.events.pop(event_id)
            db.all_log[event.position - 1] = None
        for other in db.streams.values():
            other.entries = [
                None if e is not None and e.event_id in gone else e for e in other.entries
            ]

    # -- reading ---------------------------------------------------------------------

    def _readable(self, stream_id: str) -> _Stream:
        stream = self._stream(stream_id)
        if stream is None:
            raise StreamNotFoundError(f"stream {stream_id!r} does not exist", stream_id=stream_id)
        if stream.deleted_at is not None:
            raise StreamDeletedError(f"stream {stream_id!r} is deleted", stream_id=stream_id)
        return stream

    def _visible(self, stream: _Stream) -> VisibleRange:
        if is_metadata_stream(stream.stream_id):
            return UNRESTRICTED
        meta_stream = self._stream(metadata_stream_of(stream.stream_id))
        if meta_stream is None:
            return UNRESTRICTED
        last = next((e for e in reversed(meta_stream.entries) if e is not None), None)
        if last is None:
            return UNRESTRICTED
        return visible_range(last.data, stream.version, datetime.now(UTC))

    async def read_stream(
        self,
        stream_id: str,
        start_version: int,
        count: int,
        *,
        forward: bool,
        conn: Any = None,
    ) -> list[EventRow]:
        refuse_conn(conn)
        stream = self._readable(stream_id)
        visible = self._visible(stream)
        if forward:
            first = max(start_version, visible.min_version, 1)
            numbers: range = range(first, stream.version + 1)
        else:
            last = stream.version if start_version < 0 else min(start_version, stream.version)
            numbers = range(last, max(visible.min_version, 1) - 1, -1)
        rows: list[EventRow] = []
        for number in numbers:
            if len(rows) >= count:
                break
            event = stream.entries[number - 1]
            if event is None:
                continue
            if visible.min_created_at is not None and event.created_at < visible.min_created_at:
                continue
            rows.append(event.row(number))
        return rows

    async def read_all(
        self, start_position: int, count: int, *, forward: bool, conn: Any = None
    ) -> list[EventRow]:
        refuse_conn(conn)
        log = self._database().all_log
        if forward:
            positions: range = range(max(start_position, 1), len(log) + 1)
        else:
            last = len(log) if start_position < 0 else min(start_position, len(log))
            positions = range(last, 0, -1)
        rows: list[EventRow] = []
        for position in positions:
            if len(rows) >= count:
                break
            event = log[position - 1]
            if event is not None:
                rows.append(event.row(position))
        return rows

    def _all_info(self) -> StreamInfo:
        db = self._database()
        return StreamInfo(ALL_STREAM, len(db.all_log), db.created_at, None, "created")

    async def stream_info(self, stream_id: str, *, conn: Any = None) -> StreamInfo:
        refuse_conn(conn)
        if stream_id == ALL_STREAM:
            return self._all_info()
        return self._readable(stream_id).info()

    async def paginate_streams(
        self,
        *,
        page_size: int,
        page_number: int,
        search: str | None,
        sort_by: SortBy,
        sort_dir: SortDir,
    ) -> Page[StreamInfo]:
        listed: list[tuple[int, StreamInfo]] = [(0, self._all_info())]
        listed += [(s.key, s.info()) for s in self._database().streams.values()]
        if search:
            listed = [item for item in listed if search in item[1].stream_id]
        listed = _sorted(listed, sort_by, sort_dir)
        offset = page_size * (page_number - 1)
        return Page(
            [info for _, info in listed[offset : offset + page_size]],
            page_number,
            page_size,
            len(listed),
            total_pages(len(listed), page_size),
        )

    # -- snapshots -------------------------------------------------------------------

    async def read_snapshot(self, source_id: str) -> StoredSnapshot:
        snapshot = self._database().snapshots.get(source_id)
        if snapshot is None:
            raise SnapshotNotFoundError(
                f"no snapshot for source {source_id!r}", source_id=source_id
            )
        return snapshot

    async def record_snapshot(self, snapshot: StoredSnapshot) -> None:
        snapshots = self._database().snapshots
        previous = snapshots.get(snapshot.source_id)
        created_at = previous.created_at if previous else datetime.now(UTC)
        snapshots[snapshot.source_id] = StoredSnapshot(
            snapshot.source_id,
            snapshot.source_version,
            snapshot.source_type,
            snapshot.data,
            snapshot.metadata,
            snapshot.flags,
            created_at,
        )

    async def delete_snapshot(self, source_id: str) -> None:
        self._database().snapshots.pop(source_id, None)

    # -- following the log and persistent subscriptions ------------------------------

    @property
    def changes(self) -> ChangeSignal:
        return self._database().changes

    async def subscription_checkpoint(self, stream_id: str, name: str, start_from: int) -> int:
        db = self._database()
        record = db.subscriptions.get((stream_id, name))
        if record is None:
            record = SubscriptionRecord(stream_id, name, start_from, datetime.now(UTC))
            db.subscriptions[(stream_id, name)] = record
        return record.last_seen

    async def store_checkpoint(self, stream_id: str, name: str, last_seen: int) -> None:
        db = self._database()
        record = db.subscriptions.get((stream_id, name))
        if record is not None:
            db.subscriptions[(stream_id, name)] = dataclasses.replace(record, last_seen=last_seen)

    async def delete_subscription(self, stream_id: str, name: str) -> None:
        db = self._database()
        db.subscriptions.pop((stream_id, name), None)
        db.parked.pop((stream_id, name), None)

    async def list_subscriptions(self) -> list[SubscriptionRecord]:
        db = self._database()
        return [
            dataclasses.replace(record, parked_count=len(db.parked.get(key, {})))
            for key, record in sorted(db.subscriptions.items())
        ]

    async def park(self, stream_id: str, name: str, entries: Sequence[ParkedEntry]) -> None:
        parked = self._database().parked.setdefault((stream_id, name), {})
        for entry in entries:
            parked.pop(entry.event_number, None)  # re-parking moves it to the end
            parked[entry.event_number] = entry

    async def parked(self, stream_id: str, name: str) -> list[ParkedEntry]:
        return list(self._database().parked.get((stream_id, name), {}).values())

    async def request_replay(self, stream_id: str, name: str) -> int:
        parked = self._database().parked.get((stream_id, name), {})
        for number, entry in parked.items():
            parked[number] = dataclasses.replace(entry, replay_requested=True)
        return len(parked)

    async def unpark(self, stream_id: str, name: str, event_numbers: Sequence[int]) -> None:
        parked = self._database().parked.get((stream_id, name), {})
        for number in event_numbers:
            parked.pop(number, None)

    async def try_lock_subscription(self, stream_id: str, name: str) -> SubscriptionLock | None:
        db = self._database()
        key = (stream_id, name)
        if key in db.locks:
            return None
        db.locks.add(key)
        return _MemoryLock(db, key)


def _sorted(
    listed: list[tuple[int, StreamInfo]], sort_by: SortBy, sort_dir: SortDir
) -> list[tuple[int, StreamInfo]]:
    """Order like the SQL backends: NULLs last ascending, first descending; ties by key."""
    descending = sort_dir == "desc"
    if sort_by == "created_at":
        return sorted(listed, key=lambda item: (item[1].created_at, item[0]), reverse=descending)
    # Sort by key first, then stably by the column, so ties stay in creation order.
    by_key = sorted(listed, key=lambda item: item[0])

    def column(item: tuple[int, StreamInfo]) -> tuple[int, Any]:
        value = getattr(item[1], sort_by)
        # (0, value) sorts before (1, None): NULLs last ascending, first descending.
        return (1, 0) if value is None else (0, value)

    return sorted(by_key, key=column, reverse=descending)
