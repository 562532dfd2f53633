"""Where the database lives, how connections are opened, and the schema's life cycle.

Everything here is blocking and runs on a worker thread (or the writer thread).

A file database runs in WAL mode (readers never block the writer, nor the writer the
readers) with ``synchronous=FULL``: a commit is on disk when the append returns. Durability
is the default and is never turned off.

``:memory:`` is a private in-memory database per backend instance. It uses SQLite's
``memdb`` VFS under a unique name (``file:/evstore-<uuid>?vfs=memdb``) rather than a
shared-cache URI: shared cache locks tables and fails readers at once with SQLITE_LOCKED
(busy_timeout does not apply), while ``memdb`` takes ordinary database locks, so readers
and the writer wait for each other through ``busy_timeout`` like on a file (without WAL, a
reader waits while a write transaction is open). One "keeper" connection holds the database
alive while the backend is open.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from evstore.backends.sqlite import _sql
from evstore.backends.sqlite._convert import to_micros

__all__ = ["Target", "apply_migrations", "connect", "remove_files", "reset_data", "versions"]

# busy_timeout when the store has no timeout: a week, well inside SQLite's int milliseconds.
_NO_TIMEOUT = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Target:
    """How to reach one database."""

    path: str
    """The file path as given, or ``:memory:`` (used in messages)."""
    database: str
    """What ``sqlite3.connect`` opens."""
    uri: bool
    in_memory: bool
    busy_timeout: float

    @classmethod
    def of(cls, path: str, timeout: float | None) -> Target:
        busy = _NO_TIMEOUT if timeout is None else float(timeout)
        if path == ":memory:":
            name = f"file:/evstore-{uuid.uuid4().hex}?vfs=memdb"
            return cls(path, name, uri=True, in_memory=True, busy_timeout=busy)
        return cls(path, path, uri=False, in_memory=False, busy_timeout=busy)

    def renamed(self) -> Target:
        """A fresh private name (for ``:memory:`` after a drop); files keep theirs."""
        return Target.of(self.path, self.busy_timeout) if self.in_memory else self

    def exists(self) -> bool:
        return self.in_memory or os.path.exists(self.path)

    def make_parent(self) -> None:
        if not self.in_memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)


def connect(target: Target, *, writer: bool) -> sqlite3.Connection:
    """Open a connection in autocommit mode (transactions are explicit ``BEGIN``s).

    ``check_same_thread`` is off because connections are opened on one thread and closed on
    another at shutdown; each is still used by one thread at a time.
    """
    conn = sqlite3.connect(
        target.database,
        uri=target.uri,
        timeout=target.busy_timeout,
        isolation_level=None,
        check_same_thread=False,
        cached_statements=256,
    )
    try:
        conn.execute("PRAGMA synchronous = FULL")
        if writer and not target.in_memory:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                # Persistent in the file; switching needs a moment's exclusive lock.
                conn.execute("PRAGMA journal_mode = WAL")
    except BaseException:
        conn.close()
        raise
    return conn


def versions(conn: sqlite3.Connection) -> set[str]:
    """The schema versions recorded in the database (empty when not initialised)."""
    if conn.execute(_sql.TABLE_EXISTS, ("schema_migrations",)).fetchone() is None:
        return set()
    return {row[0] for row in conn.execute(_sql.APPLIED_VERSIONS)}


def apply_migrations(conn: sqlite3.Connection) -> list[str]:
    """Apply the missing schema versions; return the ones applied (empty: already current).

    ``BEGIN IMMEDIATE`` takes the write lock before reading what is applied, so concurrent
    runs (other processes) serialise and exactly one of them records each version.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_sql.SCHEMA_MIGRATIONS)
        applied = versions(conn)
        done: list[str] = []
        now = to_micros(datetime.now(UTC))
        for version, statements in _sql.MIGRATIONS:
            if version in applied:
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute(_sql.RECORD_MIGRATION, (version, now))
            done.append(version)
        conn.execute(_sql.RECORD_CREATED_AT, (now,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return done


def reset_data(conn: sqlite3.Connection) -> None:
    """Delete every stream, event, link, snapshot, subscription and parked event; restart the
    sequences.

    Runs inside the caller's transaction. The store's creation time and schema stay.
    """
    for table in _sql.DATA_TABLES:
        conn.execute(f"DELETE FROM {table}")
    marks = ", ".join("?" * len(_sql.DATA_TABLES))
    conn.execute(f"DELETE FROM sqlite_sequence WHERE name IN ({marks})", _sql.DATA_TABLES)


def remove_files(path: str) -> bool:
    """Delete the database file and its WAL, shared-memory and journal files.

    Returns whether the main file existed.
    """
    existed = os.path.exists(path)
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)
    return existed
