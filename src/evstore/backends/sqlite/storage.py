"""``SQLiteBackend``: the storage contract on one SQLite database file (or ``:memory:``).

Writes go to the backend's :class:`~evstore.backends.sqlite.writer.WriterThread` (one
connection, group commit). Reads run on a small pool of reader threads, each with its own
connection, so a read never waits for the writer (WAL). Lifecycle commands run on a
worker thread with a short-lived connection when the backend is not open, and through the
writer when it is.

Subscriptions: checkpoints and parked events are ordinary writes and reads; every committed
append or link signals :attr:`changes` on the appender's event loop, and other processes'
commits are found by polling (SQLite has no notification channel). Ownership is an
exclusive ``flock`` on a lock file beside the database (:mod:`._locks`).
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from evstore._types import AppendResult, ExpectedVersion, Page, StreamInfo
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
from evstore.backends.sqlite import _locks, _reads, _sql, _writes, lifecycle
from evstore.backends.sqlite._errors import driver_errors
from evstore.backends.sqlite.lifecycle import Target
from evstore.backends.sqlite.writer import WriterStats, WriterThread
from evstore.errors import ConfigurationError, StorageError

__all__ = ["SQLiteBackend"]

T = TypeVar("T")

# Reads are short and SQLite releases the GIL while it works: a few threads suffice.
_READERS = min(4, os.cpu_count() or 1)


class SQLiteBackend(StorageBackend):
    """One event store in one SQLite database.

    Args:
        path: a file path (relative or absolute), or ``":memory:"`` for a private in-memory
            database that lives while the backend is open.
        enable_hard_deletes: allow ``delete_stream(..., hard=True)``.
        timeout: seconds a connection waits for another one's lock (``busy_timeout``);
            ``None`` waits without a practical limit.
        poll_interval: seconds between polls for other processes' commits (subscriptions).
    """

    def __init__(
        self,
        path: str,
        *,
        enable_hard_deletes: bool,
        timeout: float | None,
        poll_interval: float,
    ) -> None:
        self.enable_hard_deletes = enable_hard_deletes
        self.poll_interval = poll_interval
        self._target = Target.of(path, timeout)
        self._writer: WriterThread | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        # Holds a :memory: database alive between opens and lifecycle commands.
        self._keeper: sqlite3.Connection | None = None
        # Subscription locks this backend holds; close() releases them.
        self._held: set[_locks.HeldLock] = set()
        # Where the lock files live, fixed at open so a later chdir cannot move it.
        self._lock_dir: str | None = None

    @property
    def path(self) -> str:
        """The database path as given (``:memory:`` for an in-memory database)."""
        return self._target.path

    def writer_stats(self) -> WriterStats:
        """A copy of how the writer has grouped writes so far (zeros when not open)."""
        return replace(self._writer.stats) if self._writer is not None else WriterStats()

    # -- plumbing --------------------------------------------------------------------

    async def _blocking(self, function: Callable[[], T]) -> T:
        """Run blocking ``function`` on a thread of its own, translating driver errors.

        Lifecycle work is rare, so a short-lived thread (joined before returning) is cheap,
        and the backend leaves no thread behind, not even in the loop's default executor.
        """
        path = self._target.path
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def settle(value: T | None, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)  # type: ignore[arg-type]

        def run() -> None:
            try:
                with driver_errors(path):
                    value = function()
            except BaseException as exc:
                loop.call_soon_threadsafe(settle, None, exc)
            else:
                loop.call_soon_threadsafe(settle, value, None)

        thread = threading.Thread(target=run, name="evstore-sqlite-lifecycle", daemon=True)
        thread.start()
        try:
            return await future
        finally:
            # The thread has handed over its outcome and is exiting: join it. If the caller
            # was cancelled, the work may still be running: never block the loop on it.
            if future.done() and not future.cancelled():
                thread.join()

    def _keep_alive(self) -> None:
        if self._target.in_memory and self._keeper is None:
            self._keeper = lifecycle.connect(self._target, writer=False)

    def _forget_memory(self) -> None:
        if self._keeper is not None:
            self._keeper.close()
            self._keeper = None

    def _with_connection(self, function: Callable[[sqlite3.Connection], T]) -> T:
        """Blocking: run ``function`` on a short-lived writer-style connection."""
        self._keep_alive()
        conn = lifecycle.connect(self._target, writer=True)
        try:
            return function(conn)
        finally:
            conn.close()

    async def _write(
        self,
        operation: Callable[[sqlite3.Connection], T],
        *,
        on_commit: Callable[[], None] | None = None,
    ) -> T:
        """Run ``operation`` in the writer's next transaction (its own savepoint).

        ``on_commit`` runs on this event loop once the operation's transaction committed,
        even if the caller was cancelled meanwhile.
        """
        writer = self._writer
        if writer is None:
            raise StorageError(f"the SQLite store {self._target.path!r} is not open")
        result: T = await writer.submit(operation, on_commit=on_commit)
        return result

    async def _manage(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """A lifecycle write: through the writer when open, else on its own connection."""
        if self._writer is not None:
            return await self._write(operation)

        def run(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = operation(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

        return await self._blocking(lambda: self._with_connection(run))

    def _reader(self) -> sqlite3.Connection:
        """This reader thread's connection, opened on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = lifecycle.connect(self._target, writer=False)
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return conn

    async def _read(self, function: Callable[[sqlite3.Connection], T]) -> T:
        readers = self._readers
        if readers is None:
            raise StorageError(f"the SQLite store {self._target.path!r} is not open")
        path = self._target.path

        def run() -> T:
            with driver_errors(path):
                return function(self._reader())

        return await asyncio.get_running_loop().run_in_executor(readers, run)

    # -- lifecycle -------------------------------------------------------------------

    async def open(self, *, auto_init: bool = True) -> None:
        if self._writer is not None:
            return
        target = self._target

        def connect() -> sqlite3.Connection:
            if not target.exists():
                if not auto_init:
                    raise ConfigurationError(
                        f"the SQLite database {target.path!r} does not exist; "
                        "create it with `evstore init` (or open with auto_init=True)"
                    )
                target.make_parent()
            self._keep_alive()
            conn = lifecycle.connect(target, writer=True)
            try:
                recorded = lifecycle.versions(conn)
                if _sql.SCHEMA_VERSION not in recorded:
                    if not auto_init:
                        if recorded:
                            raise ConfigurationError(
                                f"the SQLite database {target.path!r} is at schema version "
                                f"{max(recorded, key=int)}, this evstore needs "
                                f"{_sql.SCHEMA_VERSION}; run `evstore migrate` "
                                "(or open with auto_init=True)"
                            )
                        raise ConfigurationError(
                            f"the SQLite database {target.path!r} is not initialised; "
                            "run `evstore init` (or open with auto_init=True)"
                        )
                    # Missing tables, or an older schema: both are brought up to date.
                    lifecycle.apply_migrations(conn)
            except BaseException:
                conn.close()
                raise
            return conn

        try:
            conn = await self._blocking(connect)
        except BaseException:
            self._forget_memory()
            raise
        self._lock_dir = None if target.in_memory else _locks.lock_directory(target.path)
        self._writer = WriterThread(conn, target.path)
        self._writer.start()
        self._readers = ThreadPoolExecutor(
            max_workers=_READERS, thread_name_prefix="evstore-sqlite-reader"
        )

    async def close(self) -> None:
        writer, readers = self._writer, self._readers
        self._writer = self._readers = None
        try:
            if writer is not None:
                # Queued writes finish first; the writer closes its own connection.
                await self._blocking(writer.stop)
        finally:
            # Only after the queued writes (a last checkpoint among them) are committed: the
            # next owner of a subscription must read the checkpoint this one left.
            for lock in list(self._held):
                lock.release_now()
        if readers is not None:
            await self._blocking(functools.partial(readers.shutdown, wait=True))
        with self._reader_lock:
            conns, self._reader_conns = self._reader_conns, []
        for conn in conns:
            conn.close()
        self._local = threading.local()
        self._forget_memory()

    async def create(self) -> str:
        target = self._target
        existed = target.exists() and not target.in_memory

        def create() -> list[str]:
            target.make_parent()
            return self._with_connection(lifecycle.apply_migrations)

        applied = await self._blocking(create)
        if existed:
            return f"The SQLite database {target.path!r} already exists" + (
                " and has been initialised." if applied else "."
            )
        return f"The SQLite database {target.path!r} has been created."

    async def init(self) -> str:
        target = self._target

        def init() -> list[str]:
            target.make_parent()
            return self._with_connection(lifecycle.apply_migrations)

        applied = await self._blocking(init)
        if applied:
            return f"The SQLite database {target.path!r} has been initialised."
        return f"The SQLite database {target.path!r} is already initialised."

    async def migrate(self) -> str:
        target = self._target

        def migrate() -> list[str]:
            target.make_parent()
            return self._with_connection(lifecycle.apply_migrations)

        applied = await self._blocking(migrate)
        if applied:
            return (
                f"The SQLite database {target.path!r} has been migrated to schema version "
                f"{', '.join(applied)}."
            )
        return (
            f"The SQLite database {target.path!r} is already at schema version "
            f"{_sql.SCHEMA_VERSION}."
        )

    async def drop(self) -> str:
        await self.close()
        target = self._target
        if target.in_memory:
            self._target = target.renamed()
            return "The in-memory SQLite database has been dropped."
        lock_dir = _locks.lock_directory(target.path)

        def remove() -> bool:
            # Lock directory first: its name comes from the file's resolved path.
            _locks.remove_directory(lock_dir)
            return lifecycle.remove_files(target.path)

        existed = await self._blocking(remove)
        if existed:
            return f"The SQLite database {target.path!r} has been dropped."
        return f"The SQLite database {target.path!r} does not exist."

    async def reset(self) -> str:
        if not self._target.exists():
            return f"The SQLite database {self._target.path!r} does not exist."
        await self._manage(_writes.reset)
        return f"The SQLite database {self._target.path!r} has been reset."

    async def schema_version(self) -> str | None:
        target = self._target
        if not target.exists():
            return None

        def version() -> str | None:
            recorded = self._with_connection(lifecycle.versions)
            return max(recorded, key=int) if recorded else None

        return await self._blocking(version)

    # -- writing ---------------------------------------------------------------------

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
        return await self._write(
            functools.partial(
                _writes.append,
                stream_id=stream_id,
                expected=expected_version,
                events=events,
                created_at=created_at,
            ),
            on_commit=self.changes.notify if events else None,
        )

    async def link(
        self,
        stream_id: str,
        expected_version: ExpectedVersion | int,
        event_ids: Sequence[UUID],
        *,
        conn: Any = None,
    ) -> AppendResult:
        refuse_conn(conn)
        return await self._write(
            functools.partial(
                _writes.link, stream_id=stream_id, expected=expected_version, event_ids=event_ids
            ),
            on_commit=self.changes.notify if event_ids else None,
        )

    async def delete_stream(
        self,
        stream_id: str,
        expected_version: ExpectedVersion | int,
        *,
        hard: bool,
        conn: Any = None,
    ) -> None:
        refuse_conn(conn)
        await self._write(
            functools.partial(
                _writes.delete_stream,
                stream_id=stream_id,
                expected=expected_version,
                hard=hard,
                hard_deletes_enabled=self.enable_hard_deletes,
            )
        )

    # -- reading ---------------------------------------------------------------------

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
        return await self._read(
            functools.partial(
                _reads.read_stream,
                stream_id=stream_id,
                start_version=start_version,
                count=count,
                forward=forward,
            )
        )

    async def read_all(
        self, start_position: int, count: int, *, forward: bool, conn: Any = None
    ) -> list[EventRow]:
        refuse_conn(conn)
        return await self._read(
            functools.partial(
                _reads.read_all, start_position=start_position, count=count, forward=forward
            )
        )

    async def stream_info(self, stream_id: str, *, conn: Any = None) -> StreamInfo:
        refuse_conn(conn)
        return await self._read(functools.partial(_reads.stream_info, stream_id=stream_id))

    async def paginate_streams(
        self,
        *,
        page_size: int,
        page_number: int,
        search: str | None,
        sort_by: SortBy,
        sort_dir: SortDir,
    ) -> Page[StreamInfo]:
        return await self._read(
            functools.partial(
                _reads.paginate_streams,
                page_size=page_size,
                page_number=page_number,
                search=search,
                sort_by=sort_by,
                sort_dir=sort_dir,
            )
        )

    # -- snapshots -------------------------------------------------------------------

    async def read_snapshot(self, source_id: str) -> StoredSnapshot:
        return await self._read(functools.partial(_reads.read_snapshot, source_id=source_id))

    async def record_snapshot(self, snapshot: StoredSnapshot) -> None:
        await self._write(functools.partial(_writes.record_snapshot, snapshot=snapshot))

    async def delete_snapshot(self, source_id: str) -> None:
        await self._write(functools.partial(_writes.delete_snapshot, source_id=source_id))

    # -- persistent subscriptions ----------------------------------------------------

    async def subscription_checkpoint(self, stream_id: str, name: str, start_from: int) -> int:
        # A write even when the row exists: find-or-create must be one step under the write
        # lock, or two processes could both miss the row and disagree on its start.
        return await self._write(
            functools.partial(
                _writes.subscription_checkpoint,
                stream_id=stream_id,
                name=name,
                start_from=start_from,
            )
        )

    async def store_checkpoint(self, stream_id: str, name: str, last_seen: int) -> None:
        await self._write(
            functools.partial(
                _writes.store_checkpoint, stream_id=stream_id, name=name, last_seen=last_seen
            )
        )

    async def delete_subscription(self, stream_id: str, name: str) -> None:
        await self._write(
            functools.partial(_writes.delete_subscription, stream_id=stream_id, name=name)
        )

    async def list_subscriptions(self) -> list[SubscriptionRecord]:
        return await self._read(_reads.list_subscriptions)

    async def park(self, stream_id: str, name: str, entries: Sequence[ParkedEntry]) -> None:
        if entries:
            await self._write(
                functools.partial(
                    _writes.park, stream_id=stream_id, name=name, entries=list(entries)
                )
            )

    async def parked(self, stream_id: str, name: str) -> list[ParkedEntry]:
        return await self._read(functools.partial(_reads.parked, stream_id=stream_id, name=name))

    async def request_replay(self, stream_id: str, name: str) -> int:
        return await self._write(
            functools.partial(_writes.request_replay, stream_id=stream_id, name=name)
        )

    async def unpark(self, stream_id: str, name: str, event_numbers: Sequence[int]) -> None:
        if event_numbers:
            await self._write(
                functools.partial(
                    _writes.unpark,
                    stream_id=stream_id,
                    name=name,
                    event_numbers=list(event_numbers),
                )
            )

    async def try_lock_subscription(self, stream_id: str, name: str) -> SubscriptionLock | None:
        """Take the subscription's lock file (see :mod:`._locks`); ``None`` when held.

        Raises:
            StorageError: the backend is not open, or the lock file cannot be used.
            NotSupportedError: the platform has no ``fcntl.flock``.
        """
        if self._writer is None:
            raise StorageError(f"the SQLite store {self._target.path!r} is not open")
        if self._lock_dir is None:
            lock = _locks.lock_in_memory(self._target.database, stream_id, name, self._held.discard)
        else:
            lock = _locks.lock_file(self._lock_dir, stream_id, name, self._held.discard)
        if lock is not None:
            self._held.add(lock)
        return lock
