"""The SQLite schema and every statement the backend runs.

Tables (times are integer microseconds since the Unix epoch, UTC, so they round-trip exactly
and sort as numbers; UUIDs are 16-byte BLOBs):

``streams``
    One row per stream. ``stream_key`` (AUTOINCREMENT) is the creation order; ``version`` is
    the highest event number handed out in the stream, by its own events and its links
    together (hard deletes elsewhere never lower it). ``deleted_at`` marks a soft delete.
``events``
    One row per event. ``position`` (INTEGER PRIMARY KEY AUTOINCREMENT, i.e. the rowid) is
    the global ``$all`` position: every write runs under ``BEGIN IMMEDIATE``, so rowids are
    handed out in commit order, a rolled-back insert gives its rowid back (no hole), and
    AUTOINCREMENT never reuses a position after a hard delete. ``$all`` is this table
    ordered by position. ``(stream_key, stream_version)`` is unique.
``links``
    A stream's links to other streams' events: ``(stream_key, stream_version)`` is the
    link's event number in the linking stream (the same number space as its own events),
    ``event_position`` the linked event. Links never enter ``$all``.
``snapshots``
    One snapshot per ``source_id``; ``created_at`` keeps the first recording's time.
``subscriptions``
    One row per persistent subscription: ``last_seen`` is its checkpoint (the event number
    up to which every event is handled), ``created_at`` when the row was created.
``parked_events`` (schema version 2)
    Events a subscription gave up on (nacked with "park", or retried too often), keyed by
    ``(stream_id, subscription_name, event_number)``. ``parked_key`` (AUTOINCREMENT) is the
    parked order: parking an event again replaces its row, so it gets a new key and moves to
    the end. No foreign key to ``subscriptions``: transient subscriptions park too.
``meta``
    Key/value facts about the store; ``created_at`` is ``$all``'s creation time.
``schema_migrations``
    One row per applied schema version.
"""

from __future__ import annotations

__all__ = ["SCHEMA_VERSION"]

SCHEMA_VERSION = "2"
"""The newest schema version; a database is current when it is recorded."""

# Tables written by evstore's own writes; reset() empties them and their sequences.
DATA_TABLES = ("links", "events", "streams", "snapshots", "subscriptions", "parked_events")

SCHEMA_V1 = (
    """CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value ANY
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS streams (
        stream_key INTEGER PRIMARY KEY AUTOINCREMENT,
        stream_id TEXT NOT NULL UNIQUE,
        version INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        deleted_at INTEGER
    )""",
    """CREATE TABLE IF NOT EXISTS events (
        position INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id BLOB NOT NULL UNIQUE,
        stream_key INTEGER NOT NULL,
        stream_version INTEGER NOT NULL,
        event_type TEXT NOT NULL,
        data BLOB NOT NULL,
        metadata BLOB,
        flags INTEGER NOT NULL,
        correlation_id BLOB,
        causation_id BLOB,
        created_at INTEGER NOT NULL,
        UNIQUE (stream_key, stream_version)
    )""",
    """CREATE TABLE IF NOT EXISTS links (
        stream_key INTEGER NOT NULL,
        stream_version INTEGER NOT NULL,
        event_position INTEGER NOT NULL,
        PRIMARY KEY (stream_key, stream_version),
        UNIQUE (stream_key, event_position)
    ) WITHOUT ROWID""",
    # Hard deletes remove the links pointing at the deleted events.
    "CREATE INDEX IF NOT EXISTS links_event_position ON links (event_position)",
    """CREATE TABLE IF NOT EXISTS snapshots (
        source_id TEXT PRIMARY KEY,
        source_version INTEGER NOT NULL,
        source_type TEXT NOT NULL,
        data BLOB NOT NULL,
        metadata BLOB,
        flags INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS subscriptions (
        subscription_key INTEGER PRIMARY KEY AUTOINCREMENT,
        stream_id TEXT NOT NULL,
        subscription_name TEXT NOT NULL,
        last_seen INTEGER,
        created_at INTEGER NOT NULL,
        UNIQUE (stream_id, subscription_name)
    )""",
)

SCHEMA_V2 = (
    """CREATE TABLE IF NOT EXISTS parked_events (
        parked_key INTEGER PRIMARY KEY AUTOINCREMENT,
        stream_id TEXT NOT NULL,
        subscription_name TEXT NOT NULL,
        event_number INTEGER NOT NULL,
        position INTEGER NOT NULL,
        reason TEXT NOT NULL,
        retry_count INTEGER NOT NULL,
        parked_at INTEGER NOT NULL,
        replay_requested INTEGER NOT NULL DEFAULT 0,
        UNIQUE (stream_id, subscription_name, event_number)
    )""",
)

SCHEMA_MIGRATIONS = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version TEXT PRIMARY KEY,
    applied_at INTEGER NOT NULL
)"""

# Migrations by version, applied in order inside one BEGIN IMMEDIATE transaction.
MIGRATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (("1", SCHEMA_V1), ("2", SCHEMA_V2))

TABLE_EXISTS = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
APPLIED_VERSIONS = "SELECT version FROM schema_migrations"
RECORD_MIGRATION = "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)"
RECORD_CREATED_AT = "INSERT OR IGNORE INTO meta (key, value) VALUES ('created_at', ?)"

# -- writes -----------------------------------------------------------------------------

SELECT_STREAM = "SELECT stream_key, version, deleted_at FROM streams WHERE stream_id = ?"
INSERT_STREAM = (
    "INSERT INTO streams (stream_id, version, created_at) VALUES (?, 0, ?) RETURNING stream_key"
)
SET_STREAM_VERSION = "UPDATE streams SET version = ? WHERE stream_key = ?"
INSERT_EVENT = """INSERT INTO events (
    event_id, stream_key, stream_version, event_type, data, metadata, flags,
    correlation_id, causation_id, created_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
UNDO_APPEND = "DELETE FROM events WHERE stream_key = ? AND stream_version > ?"
LAST_POSITION = "SELECT last_insert_rowid()"
INSERT_LINK = "INSERT INTO links (stream_key, stream_version, event_position) VALUES (?, ?, ?)"
SOFT_DELETE_STREAM = "UPDATE streams SET deleted_at = ? WHERE stream_key = ?"
HARD_DELETE_STREAM = (
    # Links anywhere that point at the stream's own events, then its own links, events, row.
    """DELETE FROM links WHERE event_position IN (
        SELECT position FROM events WHERE stream_key = :key
    )""",
    "DELETE FROM links WHERE stream_key = :key",
    "DELETE FROM events WHERE stream_key = :key",
    "DELETE FROM streams WHERE stream_key = :key",
)

# SQLite's default limit on host parameters is 32,766 (999 before 3.32): stay well below.
ID_CHUNK = 500


def existing_event_ids(count: int) -> str:
    """Which of ``count`` event ids are stored (with their positions)."""
    return f"SELECT event_id, position FROM events WHERE event_id IN ({', '.join('?' * count)})"


def ids_in_stream(count: int) -> str:
    """Which of ``count`` event ids are already in a stream, as own events or links.

    Parameters: the stream key, the ids, the stream key again, the ids again.
    """
    marks = ", ".join("?" * count)
    return (
        f"SELECT event_id FROM events WHERE stream_key = ? AND event_id IN ({marks}) "
        "UNION ALL SELECT e.event_id FROM links l JOIN events e ON e.position = l.event_position "
        f"WHERE l.stream_key = ? AND e.event_id IN ({marks})"
    )


UPSERT_SNAPSHOT = """INSERT INTO snapshots (
    source_id, source_version, source_type, data, metadata, flags, created_at
) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (source_id) DO UPDATE SET
    source_version = excluded.source_version,
    source_type = excluded.source_type,
    data = excluded.data,
    metadata = excluded.metadata,
    flags = excluded.flags"""
DELETE_SNAPSHOT = "DELETE FROM snapshots WHERE source_id = ?"

# Find-or-create: a new row starts at the given checkpoint, an existing one keeps its own.
INSERT_SUBSCRIPTION = """INSERT INTO subscriptions (
    stream_id, subscription_name, last_seen, created_at
) VALUES (?, ?, ?, ?) ON CONFLICT (stream_id, subscription_name) DO NOTHING"""
SUBSCRIPTION_CHECKPOINT = (
    "SELECT coalesce(last_seen, 0) FROM subscriptions WHERE stream_id = ? AND subscription_name = ?"
)
STORE_CHECKPOINT = (
    "UPDATE subscriptions SET last_seen = ? WHERE stream_id = ? AND subscription_name = ?"
)
DELETE_SUBSCRIPTION = "DELETE FROM subscriptions WHERE stream_id = ? AND subscription_name = ?"
DELETE_PARKED = "DELETE FROM parked_events WHERE stream_id = ? AND subscription_name = ?"
# REPLACE deletes the conflicting row and inserts a new one with a new parked_key: a
# re-parked event moves to the end of the parked order.
PARK = """REPLACE INTO parked_events (
    stream_id, subscription_name, event_number, position, reason, retry_count, parked_at,
    replay_requested
) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"""
REQUEST_REPLAY = (
    "UPDATE parked_events SET replay_requested = 1 WHERE stream_id = ? AND subscription_name = ?"
)
UNPARK = (
    "DELETE FROM parked_events WHERE stream_id = ? AND subscription_name = ? AND event_number = ?"
)

# -- reads ------------------------------------------------------------------------------

_EVENT_COLUMNS = (
    "e.event_type, e.data, e.metadata, e.flags, e.correlation_id, e.causation_id, e.created_at"
)

READ_ALL_FORWARD = f"""SELECT e.position, e.event_id, s.stream_id, e.stream_version, e.position,
    {_EVENT_COLUMNS}
FROM events e JOIN streams s ON s.stream_key = e.stream_key
WHERE e.position >= ? ORDER BY e.position LIMIT ?"""
READ_ALL_BACKWARD = f"""SELECT e.position, e.event_id, s.stream_id, e.stream_version, e.position,
    {_EVENT_COLUMNS}
FROM events e JOIN streams s ON s.stream_key = e.stream_key
WHERE e.position <= ? ORDER BY e.position DESC LIMIT ?"""


def _read_stream(direction: str) -> str:
    # A compound SELECT with ORDER BY lets SQLite merge the two index-ordered arms, so LIMIT
    # stops early even on long streams (EXPLAIN QUERY PLAN: MERGE (UNION ALL)).
    return f"""SELECT e.stream_version, e.event_id, :stream_id, e.stream_version, e.position,
    {_EVENT_COLUMNS}
FROM events e
WHERE e.stream_key = :key AND e.stream_version BETWEEN :low AND :high
    AND e.created_at >= :cutoff
UNION ALL
SELECT l.stream_version, e.event_id, s.stream_id, e.stream_version, e.position,
    {_EVENT_COLUMNS}
FROM links l JOIN events e ON e.position = l.event_position
    JOIN streams s ON s.stream_key = e.stream_key
WHERE l.stream_key = :key AND l.stream_version BETWEEN :low AND :high
    AND e.created_at >= :cutoff
ORDER BY 1 {direction} LIMIT :count"""


READ_STREAM_FORWARD = _read_stream("ASC")
READ_STREAM_BACKWARD = _read_stream("DESC")

# The latest entry (own event or link) of a metadata stream: its data is the metadata.
LATEST_DATA = """SELECT stream_version, data FROM events WHERE stream_key = :key
UNION ALL
SELECT l.stream_version, e.data FROM links l JOIN events e ON e.position = l.event_position
WHERE l.stream_key = :key
ORDER BY 1 DESC LIMIT 1"""

STREAM_INFO = "SELECT stream_id, version, created_at, deleted_at FROM streams WHERE stream_id = ?"
HIGHEST_POSITION = "SELECT seq FROM sqlite_sequence WHERE name = 'events'"
STORE_CREATED_AT = "SELECT value FROM meta WHERE key = 'created_at'"

# $all is listed as a synthesised row with key 0, so it sorts first among creation ties.
_LISTING = """SELECT 0 AS stream_key, '$all' AS stream_id,
    coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0) AS stream_version,
    (SELECT value FROM meta WHERE key = 'created_at') AS created_at,
    NULL AS deleted_at, 'created' AS status
UNION ALL
SELECT stream_key, stream_id, version, created_at, deleted_at,
    CASE WHEN deleted_at IS NULL THEN 'created' ELSE 'deleted' END
FROM streams"""


def listing(*, search: bool, order_by: str) -> str:
    """One page of the stream listing; parameters: [search], limit, offset."""
    where = "WHERE instr(stream_id, ?) > 0" if search else ""
    return f"""SELECT stream_id, stream_version, created_at, deleted_at, status
FROM ({_LISTING}) {where} ORDER BY {order_by} LIMIT ? OFFSET ?"""


def listing_count(*, search: bool) -> str:
    where = "WHERE instr(stream_id, ?) > 0" if search else ""
    return f"SELECT count(*) FROM ({_LISTING}) {where}"


def listing_order(sort_by: str, descending: bool) -> str:
    """ORDER BY matching the memory backend (NULLs last ascending, first descending)."""
    if sort_by == "created_at":
        # Ties follow the direction: later-created streams first when descending.
        return "created_at DESC, stream_key DESC" if descending else "created_at, stream_key"
    if descending:
        return f"{sort_by} IS NULL DESC, {sort_by} DESC, stream_key"
    return f"{sort_by} IS NULL, {sort_by}, stream_key"


LIST_SUBSCRIPTIONS = """SELECT s.stream_id, s.subscription_name, coalesce(s.last_seen, 0),
    s.created_at,
    (SELECT count(*) FROM parked_events p
        WHERE p.stream_id = s.stream_id AND p.subscription_name = s.subscription_name)
FROM subscriptions s ORDER BY s.stream_id, s.subscription_name"""
PARKED = """SELECT event_number, position, reason, retry_count, parked_at, replay_requested
FROM parked_events WHERE stream_id = ? AND subscription_name = ? ORDER BY parked_key"""

READ_SNAPSHOT = """SELECT source_id, source_version, source_type, data, metadata, flags,
    created_at FROM snapshots WHERE source_id = ?"""
