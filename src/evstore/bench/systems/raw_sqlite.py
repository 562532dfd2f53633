"""The physical limit on SQLite: the same rows written and read with bare ``sqlite3``.

WAL, ``synchronous=FULL`` (evstore's settings), a minimal event table (rowid position,
stream id, version, type, payload, ``created_at``, unique (stream, version)), and one
``executemany`` in one ``BEGIN IMMEDIATE`` transaction per append. Writers are threads
sharing one connection under a first-come-first-served lock: SQLite commits one writer at a
time anyway, and a queue serves them without the busy-handler sleeps that separate
connections would pay (and, unlike ``threading.Lock``, without letting the releasing thread
win again and starve the others, which would make the latencies meaningless).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from evstore.bench._data import EVENT_TYPE, PAYLOAD_BYTES, new_stream_id
from evstore.bench._timing import SyncOperation
from evstore.bench.systems._base import ThreadTarget

__all__ = ["FifoLock", "RawSqliteTarget", "connect"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY,
    stream_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    type TEXT NOT NULL,
    data BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (stream_id, version)
)
"""
INSERT = "INSERT INTO events (stream_id, version, type, data, created_at) VALUES (?, ?, ?, ?, ?)"
READ_STREAM = "SELECT * FROM events WHERE stream_id = ? ORDER BY version"
READ_ALL = "SELECT * FROM events WHERE position > ? ORDER BY position LIMIT ?"


class FifoLock:
    """A lock handed to waiters in arrival order."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._waiters: deque[threading.Lock] = deque()
        self._held = False

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._guard:
            if self._held:
                turn = threading.Lock()
                turn.acquire()
                self._waiters.append(turn)
            else:
                self._held, turn = True, None
        if turn is not None:
            turn.acquire()  # released by the previous holder: ownership passes directly
        try:
            yield
        finally:
            with self._guard:
                if self._waiters:
                    self._waiters.popleft().release()
                else:
                    self._held = False


def connect(path: str) -> sqlite3.Connection:
    """A connection in autocommit mode with WAL and ``synchronous=FULL``."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


class RawSqliteTarget(ThreadTarget):
    """Bare sqlite3 on one file."""

    label = "raw sqlite3"
    role = "limit"

    def __init__(self, path: str) -> None:
        self.path = path
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._lock = FifoLock()

    async def open(self) -> None:
        self._writer = connect(self.path)
        self._writer.execute(SCHEMA)
        self._reader = connect(self.path)

    async def close(self) -> None:
        for conn in (self._writer, self._reader):
            if conn is not None:
                conn.close()
        self._writer = self._reader = None

    def _write(self, stream: str, first: int, count: int) -> None:
        assert self._writer is not None
        now = time.time_ns() // 1000
        rows = [(stream, v, EVENT_TYPE, PAYLOAD_BYTES, now) for v in range(first, first + count)]
        with self._lock.held():
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                self._writer.executemany(INSERT, rows)
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")

    def appender(self, size: int) -> SyncOperation:
        stream = new_stream_id()
        version = [0]

        def append() -> None:
            self._write(stream, version[0] + 1, size)
            version[0] += size

        return append

    def reader(self, stream: str) -> SyncOperation:
        def read() -> None:
            assert self._reader is not None
            self._reader.execute(READ_STREAM, (stream,)).fetchall()

        return read

    async def fill(self, streams: Sequence[str], size: int) -> None:
        for stream in streams:
            self._write(stream, 1, size)

    async def scan_all(self, page: int) -> int:
        assert self._reader is not None
        count, position = 0, 0
        while True:
            rows = self._reader.execute(READ_ALL, (position, page)).fetchall()
            count += len(rows)
            if len(rows) < page:
                return count
            position = rows[-1][0]
