"""The write operations, each run by the writer thread inside its own savepoint.

Each function checks the stored state and writes, or raises and writes nothing (the writer
rolls back to the savepoint). They run inside ``BEGIN IMMEDIATE``, holding the database's
write lock, so the state they read cannot change before they commit — also against other
processes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from uuid import UUID

from evstore._types import AppendResult, ExpectedVersion
from evstore.backends.base import NewEvent, ParkedEntry, StoredSnapshot
from evstore.backends.rules import (
    StreamState,
    check_delete,
    check_expected_version,
    check_new_links,
)
from evstore.backends.sqlite import _sql, lifecycle
from evstore.backends.sqlite._convert import to_micros, uuid_bytes
from evstore.errors import DuplicateEventError, EventNotFoundError

__all__ = [
    "append",
    "delete_snapshot",
    "delete_stream",
    "delete_subscription",
    "link",
    "park",
    "record_snapshot",
    "request_replay",
    "reset",
    "store_checkpoint",
    "subscription_checkpoint",
    "unpark",
]

_StreamRow = tuple[int, int, int | None]


def _stream(conn: sqlite3.Connection, stream_id: str) -> _StreamRow | None:
    row: _StreamRow | None = conn.execute(_sql.SELECT_STREAM, (stream_id,)).fetchone()
    return row


def _state(row: _StreamRow | None) -> StreamState | None:
    return None if row is None else StreamState(row[1], row[2] is not None)


def _chunks(items: Sequence[UUID]) -> Iterator[Sequence[UUID]]:
    for start in range(0, len(items), _sql.ID_CHUNK):
        yield items[start : start + _sql.ID_CHUNK]


def _stored_positions(conn: sqlite3.Connection, event_ids: Sequence[UUID]) -> dict[UUID, int]:
    """Positions of those of ``event_ids`` that are stored."""
    found: dict[UUID, int] = {}
    for chunk in _chunks(event_ids):
        params = [event_id.bytes for event_id in chunk]
        for raw, position in conn.execute(_sql.existing_event_ids(len(chunk)), params):
            found[UUID(bytes=raw)] = position
    return found


def _create_stream(conn: sqlite3.Connection, stream_id: str, created_at: datetime) -> int:
    key: int = conn.execute(_sql.INSERT_STREAM, (stream_id, to_micros(created_at))).fetchone()[0]
    return key


def append(
    conn: sqlite3.Connection,
    stream_id: str,
    expected: ExpectedVersion | int,
    events: Sequence[NewEvent],
    created_at: datetime,
) -> AppendResult:
    """Append ``events`` after checking ``expected``; see ``StorageBackend.append``."""
    row = _stream(conn, stream_id)
    check_expected_version(stream_id, expected, _state(row))
    if not events:
        return AppendResult(0 if row is None else row[1], None)
    if row is None:
        key, version = _create_stream(conn, stream_id, created_at), 0
    else:
        key, version = row[0], row[1]
    micros = to_micros(created_at)
    rows = [
        (
            event.event_id.bytes,
            key,
            version + number,
            event.event_type,
            event.data,
            event.metadata,
            event.flags,
            uuid_bytes(event.correlation_id),
            uuid_bytes(event.causation_id),
            micros,
        )
        for number, event in enumerate(events, 1)
    ]
    try:
        # One statement, many rows: no host-parameter limit, whatever the batch size.
        conn.executemany(_sql.INSERT_EVENT, rows)
    except sqlite3.IntegrityError:
        # The only unique key a valid append can hit is event_id (stored before, or repeated
        # in this batch). Undo this append's rows first so the lookup sees only the events
        # stored before it, then report the first offender in order (as memory.py does).
        conn.execute(_sql.UNDO_APPEND, (key, version))
        stored = _stored_positions(conn, [event.event_id for event in events])
        seen: set[UUID] = set()
        for event in events:
            if event.event_id in stored or event.event_id in seen:
                raise _duplicate(stream_id, event.event_id) from None
            seen.add(event.event_id)
        raise
    position: int = conn.execute(_sql.LAST_POSITION).fetchone()[0]
    new_version = version + len(events)
    conn.execute(_sql.SET_STREAM_VERSION, (new_version, key))
    return AppendResult(new_version, position)


def _duplicate(stream_id: str, event_id: UUID) -> DuplicateEventError:
    return DuplicateEventError(
        f"event {event_id} is already stored", stream_id=stream_id, event_id=event_id
    )


def link(
    conn: sqlite3.Connection,
    stream_id: str,
    expected: ExpectedVersion | int,
    event_ids: Sequence[UUID],
) -> AppendResult:
    """Link stored events into ``stream_id``; see ``StorageBackend.link``."""
    row = _stream(conn, stream_id)
    check_expected_version(stream_id, expected, _state(row))
    if not event_ids:
        return AppendResult(0 if row is None else row[1], None)
    positions = _stored_positions(conn, event_ids)
    missing = [event_id for event_id in event_ids if event_id not in positions]
    if missing:
        raise EventNotFoundError(
            f"cannot link unknown event ids: {', '.join(map(str, missing))}",
            stream_id=stream_id,
            event_ids=missing,
        )
    present: set[UUID] = set()
    if row is not None:
        for chunk in _chunks(event_ids):
            params = [row[0], *(e.bytes for e in chunk), row[0], *(e.bytes for e in chunk)]
            query = _sql.ids_in_stream(len(chunk))
            present.update(UUID(bytes=raw) for (raw,) in conn.execute(query, params))
    check_new_links(stream_id, event_ids, present)
    if row is None:
        key, version = _create_stream(conn, stream_id, datetime.now(UTC)), 0
    else:
        key, version = row[0], row[1]
    conn.executemany(
        _sql.INSERT_LINK,
        [(key, version + n, positions[event_id]) for n, event_id in enumerate(event_ids, 1)],
    )
    new_version = version + len(event_ids)
    conn.execute(_sql.SET_STREAM_VERSION, (new_version, key))
    return AppendResult(new_version, positions[event_ids[-1]])


def delete_stream(
    conn: sqlite3.Connection,
    stream_id: str,
    expected: ExpectedVersion | int,
    *,
    hard: bool,
    hard_deletes_enabled: bool,
) -> None:
    """Soft delete (mark) or hard delete (remove everywhere) ``stream_id``."""
    row = _stream(conn, stream_id)
    check_delete(
        stream_id, expected, _state(row), hard=hard, hard_deletes_enabled=hard_deletes_enabled
    )
    assert row is not None  # check_delete raised otherwise
    if not hard:
        conn.execute(_sql.SOFT_DELETE_STREAM, (to_micros(datetime.now(UTC)), row[0]))
        return
    for statement in _sql.HARD_DELETE_STREAM:
        conn.execute(statement, {"key": row[0]})


def record_snapshot(conn: sqlite3.Connection, snapshot: StoredSnapshot) -> None:
    """Insert or replace a snapshot; a replacement keeps the first ``created_at``."""
    conn.execute(
        _sql.UPSERT_SNAPSHOT,
        (
            snapshot.source_id,
            snapshot.source_version,
            snapshot.source_type,
            snapshot.data,
            snapshot.metadata,
            snapshot.flags,
            to_micros(datetime.now(UTC)),
        ),
    )


def delete_snapshot(conn: sqlite3.Connection, source_id: str) -> None:
    conn.execute(_sql.DELETE_SNAPSHOT, (source_id,))


def reset(conn: sqlite3.Connection) -> None:
    lifecycle.reset_data(conn)


# -- persistent subscriptions -----------------------------------------------------------


def subscription_checkpoint(
    conn: sqlite3.Connection, stream_id: str, name: str, start_from: int
) -> int:
    """Find or create the subscription's row; return its checkpoint.

    Both statements run under the write lock, so two processes creating the same
    subscription at once agree on one row and one checkpoint.
    """
    now = to_micros(datetime.now(UTC))
    conn.execute(_sql.INSERT_SUBSCRIPTION, (stream_id, name, start_from, now))
    last_seen: int = conn.execute(_sql.SUBSCRIPTION_CHECKPOINT, (stream_id, name)).fetchone()[0]
    return last_seen


def store_checkpoint(conn: sqlite3.Connection, stream_id: str, name: str, last_seen: int) -> None:
    """Set the checkpoint; a deleted subscription stays deleted (no row is created)."""
    conn.execute(_sql.STORE_CHECKPOINT, (last_seen, stream_id, name))


def delete_subscription(conn: sqlite3.Connection, stream_id: str, name: str) -> None:
    conn.execute(_sql.DELETE_SUBSCRIPTION, (stream_id, name))
    conn.execute(_sql.DELETE_PARKED, (stream_id, name))


def park(
    conn: sqlite3.Connection, stream_id: str, name: str, entries: Sequence[ParkedEntry]
) -> None:
    """Store parked entries in order; an entry parked again replaces the old one."""
    conn.executemany(
        _sql.PARK,
        [
            (
                stream_id,
                name,
                entry.event_number,
                entry.position,
                entry.reason,
                entry.retry_count,
                to_micros(entry.parked_at),
                int(entry.replay_requested),
            )
            for entry in entries
        ],
    )


def request_replay(conn: sqlite3.Connection, stream_id: str, name: str) -> int:
    """Flag every parked entry for replay; return how many there are."""
    # SQLite counts every row the WHERE matched, already-flagged ones included.
    count: int = conn.execute(_sql.REQUEST_REPLAY, (stream_id, name)).rowcount
    return count


def unpark(
    conn: sqlite3.Connection, stream_id: str, name: str, event_numbers: Sequence[int]
) -> None:
    conn.executemany(_sql.UNPARK, [(stream_id, name, number) for number in event_numbers])
