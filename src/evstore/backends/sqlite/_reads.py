"""The read operations, run on reader connections (never the writer's).

A read that needs more than one statement runs them in one read transaction, so it sees one
committed snapshot of the database (WAL gives readers a stable snapshot without blocking the
writer).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from evstore._types import ALL_STREAM, Page, StreamInfo
from evstore.backends.base import (
    EventRow,
    ParkedEntry,
    SortBy,
    SortDir,
    StoredSnapshot,
    SubscriptionRecord,
)
from evstore.backends.rules import (
    UNRESTRICTED,
    VisibleRange,
    is_metadata_stream,
    metadata_stream_of,
    total_pages,
    visible_range,
)
from evstore.backends.sqlite import _sql
from evstore.backends.sqlite._convert import event_rows, from_micros, to_micros
from evstore.errors import SnapshotNotFoundError, StreamDeletedError, StreamNotFoundError

__all__ = [
    "list_subscriptions",
    "paginate_streams",
    "parked",
    "read_all",
    "read_snapshot",
    "read_stream",
    "stream_info",
]

# Below any stored time: "no $maxAge cutoff" without a second statement text.
_NO_CUTOFF = -(2**62)
_SORT_COLUMNS = frozenset({"created_at", "stream_id", "stream_version", "deleted_at", "status"})


@contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction: every statement inside sees the same committed state."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def _readable(conn: sqlite3.Connection, stream_id: str) -> tuple[int, int]:
    """The key and version of a stream that may be read.

    Raises:
        StreamNotFoundError, StreamDeletedError.
    """
    row = conn.execute(_sql.SELECT_STREAM, (stream_id,)).fetchone()
    if row is None:
        raise StreamNotFoundError(f"stream {stream_id!r} does not exist", stream_id=stream_id)
    if row[2] is not None:
        raise StreamDeletedError(f"stream {stream_id!r} is deleted", stream_id=stream_id)
    return row[0], row[1]


def _visible(conn: sqlite3.Connection, stream_id: str, version: int) -> VisibleRange:
    """What the stream's metadata (the latest entry of ``$$<stream_id>``) leaves readable."""
    if is_metadata_stream(stream_id):
        return UNRESTRICTED
    meta = conn.execute(_sql.SELECT_STREAM, (metadata_stream_of(stream_id),)).fetchone()
    if meta is None:
        return UNRESTRICTED
    latest = conn.execute(_sql.LATEST_DATA, {"key": meta[0]}).fetchone()
    if latest is None:
        return UNRESTRICTED
    return visible_range(latest[1], version, datetime.now(UTC))


def read_stream(
    conn: sqlite3.Connection, stream_id: str, start_version: int, count: int, *, forward: bool
) -> list[EventRow]:
    """A stream's events (own and linked) by event number; see ``StorageBackend``."""
    with _snapshot(conn):
        key, version = _readable(conn, stream_id)
        visible = _visible(conn, stream_id, version)
        lowest = max(visible.min_version, 1)
        if forward:
            low, high = max(start_version, lowest), version
        else:
            low = lowest
            high = version if start_version < 0 else min(start_version, version)
        cutoff = _NO_CUTOFF if visible.min_created_at is None else to_micros(visible.min_created_at)
        params = {
            "stream_id": stream_id,
            "key": key,
            "low": low,
            "high": high,
            "cutoff": cutoff,
            "count": count,
        }
        query = _sql.READ_STREAM_FORWARD if forward else _sql.READ_STREAM_BACKWARD
        rows = conn.execute(query, params).fetchall()
    return event_rows(rows)


def read_all(
    conn: sqlite3.Connection, start_position: int, count: int, *, forward: bool
) -> list[EventRow]:
    """``$all`` by global position; the event number is the position."""
    if forward:
        rows = conn.execute(_sql.READ_ALL_FORWARD, (start_position, count)).fetchall()
    else:
        start = 2**63 - 1 if start_position < 0 else start_position
        rows = conn.execute(_sql.READ_ALL_BACKWARD, (start, count)).fetchall()
    return event_rows(rows)


def _all_info(conn: sqlite3.Connection) -> StreamInfo:
    highest = conn.execute(_sql.HIGHEST_POSITION).fetchone()
    created = conn.execute(_sql.STORE_CREATED_AT).fetchone()
    return StreamInfo(
        ALL_STREAM,
        0 if highest is None else highest[0],
        from_micros(created[0]),
        None,
        "created",
    )


def stream_info(conn: sqlite3.Connection, stream_id: str) -> StreamInfo:
    """Describe a stream, ``$all`` included."""
    with _snapshot(conn):
        if stream_id == ALL_STREAM:
            return _all_info(conn)
        row = conn.execute(_sql.STREAM_INFO, (stream_id,)).fetchone()
    if row is None:
        raise StreamNotFoundError(f"stream {stream_id!r} does not exist", stream_id=stream_id)
    if row[3] is not None:
        raise StreamDeletedError(f"stream {stream_id!r} is deleted", stream_id=stream_id)
    return StreamInfo(row[0], row[1], from_micros(row[2]), None, "created")


def paginate_streams(
    conn: sqlite3.Connection,
    *,
    page_size: int,
    page_number: int,
    search: str | None,
    sort_by: SortBy,
    sort_dir: SortDir,
) -> Page[StreamInfo]:
    """One page of the streams, ``$all`` first among creation ties."""
    if sort_by not in _SORT_COLUMNS:  # it is spliced into the SQL text
        raise ValueError(f"unknown sort column {sort_by!r}")
    order = _sql.listing_order(sort_by, sort_dir == "desc")
    filtered = search is not None
    search_params: tuple[str, ...] = (search,) if search is not None else ()
    offset = page_size * (page_number - 1)
    with _snapshot(conn):
        total: int = conn.execute(_sql.listing_count(search=filtered), search_params).fetchone()[0]
        rows = conn.execute(
            _sql.listing(search=filtered, order_by=order), (*search_params, page_size, offset)
        ).fetchall()
    entries = [
        StreamInfo(
            stream_id,
            version,
            from_micros(created_at),
            None if deleted_at is None else from_micros(deleted_at),
            status,
        )
        for stream_id, version, created_at, deleted_at, status in rows
    ]
    return Page(entries, page_number, page_size, total, total_pages(total, page_size))


def read_snapshot(conn: sqlite3.Connection, source_id: str) -> StoredSnapshot:
    """Raises: SnapshotNotFoundError."""
    row = conn.execute(_sql.READ_SNAPSHOT, (source_id,)).fetchone()
    if row is None:
        raise SnapshotNotFoundError(f"no snapshot for source {source_id!r}", source_id=source_id)
    return StoredSnapshot(row[0], row[1], row[2], row[3], row[4], row[5], from_micros(row[6]))


def list_subscriptions(conn: sqlite3.Connection) -> list[SubscriptionRecord]:
    """Every subscription row with its parked count, by (stream_id, subscription_name)."""
    return [
        SubscriptionRecord(stream_id, name, last_seen, from_micros(created_at), parked_count)
        for stream_id, name, last_seen, created_at, parked_count in conn.execute(
            _sql.LIST_SUBSCRIPTIONS
        )
    ]


def parked(conn: sqlite3.Connection, stream_id: str, name: str) -> list[ParkedEntry]:
    """A subscription's parked entries, oldest parked first."""
    return [
        ParkedEntry(number, position, reason, retry_count, from_micros(parked_at), bool(replay))
        for number, position, reason, retry_count, parked_at, replay in conn.execute(
            _sql.PARKED, (stream_id, name)
        )
    ]
