"""``PostgresBackend``: the storage contract on PostgreSQL, through asyncpg.

How the parts fit:

* appends go through the :class:`~.writer.GroupCommitWriter` (many appends per
  statement and transaction, each checked alone, usually numbered in the same
  transaction); those stored without a position wait on the
  :class:`~.sequencer.SequencerLoop` for the global position of their last event;
* ``conn=`` appends and links run the same functions directly on the caller's connection,
  inside its transaction (position ``None``: it is assigned after the caller commits);
* reads only return events that have a global position, so every ``RecordedEvent`` has a
  real one; an append returns after its position is assigned, so its own events are
  readable at once;
* the schema, the functions and the position design are described in :mod:`._sql`;
* followers of the log (subscriptions) are woken through :attr:`changes`: after local
  commits, after sequencer cycles that found new positions, and, once
  :meth:`PostgresBackend.watch_changes` ran, on every NOTIFY from other processes
  (:mod:`.listener`); ownership of persistent subscriptions is a session advisory lock
  (:mod:`.locks`).

Expected-version failures are detected in SQL, and the Python rules
(:func:`evstore.backends.rules.check_expected_version`) are then applied to the stream state
the function returns, so the errors and their messages are exactly the other backends'.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg

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
)
from evstore.backends.postgres import _codes, _sql, lifecycle
from evstore.backends.postgres._codecs import install_codecs
from evstore.backends.postgres._errors import translated
from evstore.backends.postgres._sql import Sql
from evstore.backends.postgres.listener import ChangeListener
from evstore.backends.postgres.locks import SubscriptionLocks
from evstore.backends.postgres.sequencer import SequencerLoop
from evstore.backends.postgres.writer import GroupCommitWriter
from evstore.backends.rules import (
    UNRESTRICTED,
    StreamState,
    check_delete,
    check_expected_version,
    is_metadata_stream,
    metadata_stream_of,
    total_pages,
    visible_range,
)
from evstore.errors import (
    ConfigurationError,
    DuplicateEventError,
    EventNotFoundError,
    EventStoreTimeoutError,
    InvalidArgumentError,
    SnapshotNotFoundError,
    StorageError,
    StreamDeletedError,
    StreamNotFoundError,
)

__all__ = ["PostgresBackend"]

_log = logging.getLogger(__name__)

_MAX_BIGINT = 2**63 - 1
_DIRECT_RETRIES = 20
"""Attempts of a ``conn=`` append or a link that keeps meeting a deadlock or a race."""

_EXPECTED_CODES = {
    ExpectedVersion.ANY_VERSION: _codes.ANY,
    ExpectedVersion.NO_STREAM: _codes.NO_STREAM,
    ExpectedVersion.STREAM_EXISTS: _codes.STREAM_EXISTS,
}

# ORDER BY clauses of paginate_streams, matching memory.py's _sorted: NULLs last ascending
# and first descending, ties in creation order (by key; created_at ties follow sort_dir).
# stream_id compares by code point, as Python does, hence the "C" collation.
_COLUMNS = {
    "stream_id": 'stream_id COLLATE "C"',
    "stream_version": "version",
    "deleted_at": "deleted_at",
    "status": "status",
}


def _order_by(sort_by: SortBy, sort_dir: SortDir) -> str:
    if sort_by == "created_at":
        return "created_at ASC, key ASC" if sort_dir == "asc" else "created_at DESC, key DESC"
    column = _COLUMNS[sort_by]
    if sort_dir == "asc":
        return f"{column} ASC NULLS LAST, key ASC"
    return f"{column} DESC NULLS FIRST, key ASC"


def _expected_code(expected: ExpectedVersion | int) -> int:
    if isinstance(expected, ExpectedVersion):
        return _EXPECTED_CODES[expected]
    return expected


def _raise_expectation(
    stream_id: str, expected: ExpectedVersion | int, version: int | None, deleted: bool | None
) -> None:
    state = None if version is None else StreamState(version, bool(deleted))
    check_expected_version(stream_id, expected, state)
    raise StorageError(  # the SQL and Python rules disagree: a bug, never silently ignored
        f"the database refused expected version {expected!r} for stream {stream_id!r} "
        f"(version {version}, deleted {deleted}) but the rules accept it"
    )


class _PooledConnection(asyncpg.Connection):
    """A pool connection released without asyncpg's reset query.

    The default release sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL`` (a round trip, measured at 180 µs of a 250 µs acquire-query-release). evstore
    leaves no session state on pool connections: settings are fixed at connect, its advisory
    locks are transaction-scoped, LISTEN and session locks live on dedicated connections.
    An open transaction is still rolled back (asyncpg does that before the reset query).
    """

    def get_reset_query(self) -> str:
        return ""


class PostgresBackend(StorageBackend):
    """An event store in one PostgreSQL schema.

    Args:
        dsn: ``postgresql://`` URL of the database.
        schema: the schema holding the store (quoted everywhere).
        enable_hard_deletes: allow ``delete_stream(..., hard=True)``.
        pool_size: connections in the pool.
        timeout: asyncpg ``command_timeout`` in seconds (``None``: no limit).
        poll_interval: seconds between idle sequencer cycles, and the longest a follower
            of the log waits before it reads again.
        notifications: LISTEN for other processes' new events once :meth:`watch_changes`
            is called (False: followers rely on polling; the sequencer and the link
            function send their NOTIFY either way).
        session_mode_url: URL for the long-lived connections (the sequencer's, the LISTEN
            connection, the subscription lock connection) when the pool goes through a
            transaction-mode pooler.
        column_data_type: ``"bytea"`` or ``"jsonb"`` payload columns.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str,
        enable_hard_deletes: bool,
        pool_size: int,
        timeout: float | None,
        poll_interval: float,
        notifications: bool,
        session_mode_url: str | None,
        column_data_type: Literal["bytea", "jsonb"],
    ) -> None:
        self._dsn = dsn
        self._sql = Sql(schema, column_data_type)
        self.enable_hard_deletes = enable_hard_deletes
        self.supports_binary = column_data_type == "bytea"
        self.times_appends = True
        self._pool_size = pool_size
        self._timeout = timeout
        self._poll_interval = poll_interval
        self.poll_interval = poll_interval
        self._notifications = notifications
        self._session_mode_url = session_mode_url
        self._pool: asyncpg.Pool | None = None
        self._writer: GroupCommitWriter | None = None
        self._sequencer: SequencerLoop | None = None
        self._session_conn: asyncpg.Connection | None = None
        self._listener: ChangeListener | None = None
        self._locks: SubscriptionLocks | None = None

    # -- connections -----------------------------------------------------------------

    def _connect_options(self) -> dict[str, Any]:
        return {
            "command_timeout": self._timeout,
            # JIT compiles a query when its estimated cost is high, which the generic
            # plans of the sequencer's statements often are (with nothing to do, at times):
            # measured 50 ms of compilation for a 0.2 ms query. evstore's statements are
            # short index lookups that JIT never speeds up.
            "server_settings": {"application_name": "evstore", "jit": "off"},
        }

    def _dedicated(self, application_name: str) -> Callable[[], Awaitable[asyncpg.Connection]]:
        """Opens a connection outside the pool, for session state (LISTEN, advisory locks):
        from ``session_mode_url`` when set. The application name tells them apart in
        ``pg_stat_activity``."""
        options = self._connect_options()
        options["server_settings"] = {
            **options["server_settings"],
            "application_name": application_name,
        }
        url = self._session_mode_url or self._dsn

        async def connect() -> asyncpg.Connection:
            conn: asyncpg.Connection = await asyncpg.connect(url, **options)
            return conn

        return connect

    def _require_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StorageError("the PostgreSQL store is not open")
        return self._pool

    @asynccontextmanager
    async def _connection(self, conn: Any = None) -> AsyncIterator[Any]:
        """The caller's connection when given, else one from the pool."""
        if conn is not None:
            yield conn
            return
        async with self._require_pool().acquire() as pooled:
            yield pooled

    @asynccontextmanager
    async def _admin_connection(self) -> AsyncIterator[Any]:
        """A pool connection when open, else a short-lived direct one (lifecycle calls)."""
        if self._pool is not None:
            async with self._pool.acquire() as pooled:
                yield pooled
            return
        with translated("connecting"):
            conn = await asyncpg.connect(self._dsn, **self._connect_options())
        try:
            yield conn
        finally:
            await conn.close()

    @asynccontextmanager
    async def _sequencer_connection(self) -> AsyncIterator[Any]:
        if self._session_mode_url is None:
            async with self._require_pool().acquire() as pooled:
                yield pooled
            return
        if self._session_conn is None or self._session_conn.is_closed():
            self._session_conn = await asyncpg.connect(
                self._session_mode_url, **self._connect_options()
            )
        yield self._session_conn

    # -- lifecycle -------------------------------------------------------------------

    async def open(self, *, auto_init: bool = True) -> None:
        if self._pool is not None:
            return
        with translated("connecting"):
            pool = await asyncpg.create_pool(
                self._dsn,
                min_size=min(2, self._pool_size),
                max_size=self._pool_size,
                connection_class=_PooledConnection,
                init=install_codecs,
                **self._connect_options(),
            )
        try:
            async with pool.acquire() as conn:
                await self._check_schema(conn, auto_init)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        self._writer = GroupCommitWriter(pool, self._sql.write, self._sql.append)
        self._sequencer = SequencerLoop(
            self._sequencer_connection,
            self._sql.sequence,
            self._poll_interval,
            on_numbered=self.changes.notify,
        )
        self._locks = SubscriptionLocks(self._dedicated("evstore-locks"), self._sql.schema)

    async def _check_schema(self, conn: Any, auto_init: bool) -> None:
        schema = self._sql.schema
        with translated("checking the schema"):
            version = await lifecycle.schema_version(conn, self._sql)
        if version is None:
            if not auto_init:
                raise ConfigurationError(
                    f'schema "{schema}" is not initialised; run `evstore init` '
                    "(or open the store with auto_init=True)"
                )
            await lifecycle.initialise(conn, self._sql)
        elif version != _sql.SCHEMA_VERSION:
            raise ConfigurationError(
                f'schema "{schema}" is at version {version}, this evstore needs '
                f"{_sql.SCHEMA_VERSION}; run `evstore migrate`"
            )
        with translated("checking the schema"):
            column_type = await conn.fetchval(self._sql.data_column_type())
        if column_type != self._sql.column_type:
            raise ConfigurationError(
                f'schema "{schema}" stores payloads as {column_type}, but the store was '
                f"opened with column_data_type={self._sql.column_type!r}"
            )

    async def close(self) -> None:
        listener, locks = self._listener, self._locks
        self._listener = self._locks = None
        if listener is not None:
            await listener.close()
        if locks is not None:
            await locks.close()
        writer, sequencer, pool = self._writer, self._sequencer, self._pool
        self._writer = self._sequencer = None
        if writer is not None:
            await writer.close()
        if sequencer is not None:
            await sequencer.close()
        self._pool = None
        if self._session_conn is not None:
            await self._session_conn.close()
            self._session_conn = None
        if pool is not None:
            await pool.close()

    async def create(self) -> str:
        return await lifecycle.create_database(self._dsn, self._sql, self._connect_options())

    async def init(self) -> str:
        async with self._admin_connection() as conn:
            return await lifecycle.initialise(conn, self._sql)

    async def migrate(self) -> str:
        async with self._admin_connection() as conn:
            return await lifecycle.migrate(conn, self._sql)

    async def drop(self) -> str:
        async with self._admin_connection() as conn:
            return await lifecycle.drop_schema(conn, self._sql)

    async def reset(self) -> str:
        async with self._admin_connection() as conn:
            return await lifecycle.reset(conn, self._sql)

    async def schema_version(self) -> str | None:
        try:
            async with self._admin_connection() as conn:
                with translated("reading the schema version"):
                    version = await lifecycle.schema_version(conn, self._sql)
        except StorageError as exc:
            if isinstance(exc.__cause__, asyncpg.InvalidCatalogNameError):
                return None  # no database, so certainly no schema
            raise
        return None if version is None else str(version)

    # -- writing ---------------------------------------------------------------------

    def _append_args(
        self,
        stream_id: str,
        expected: ExpectedVersion | int,
        events: Sequence[NewEvent],
        created_at: datetime,
    ) -> tuple[Any, ...]:
        data: list[Any] = [event.data for event in events]
        metadata: list[Any] = [event.metadata for event in events]
        if not self.supports_binary:  # jsonb columns take JSON text
            data = [_jsonb_text(v, f"events[{i}].data") for i, v in enumerate(data)]
            metadata = [
                None if v is None else _jsonb_text(v, f"events[{i}].metadata")
                for i, v in enumerate(metadata)
            ]
        return (
            stream_id,
            _expected_code(expected),
            created_at,
            [event.event_id for event in events],
            [event.event_type for event in events],
            data,
            metadata,
            [event.flags for event in events],
            [event.correlation_id for event in events],
            [event.causation_id for event in events],
        )

    async def append(
        self,
        stream_id: str,
        expected_version: ExpectedVersion | int,
        events: Sequence[NewEvent],
        created_at: datetime,
        *,
        conn: Any = None,
    ) -> AppendResult:
        args = self._append_args(stream_id, expected_version, events, created_at)
        row: Any
        if conn is not None:
            row = await self._direct(conn, self._sql.append, args, "appending")
            version = self._appended(stream_id, expected_version, row)
            if not events or conn.is_in_transaction() or self._sequencer is None:
                # Positions are assigned after the caller commits, by a later cycle.
                return AppendResult(version, None)
            position = await self._position_after_commit(events[-1].event_id)
            self.changes.notify()
            return AppendResult(version, position)
        writer, sequencer = self._writer, self._sequencer
        if writer is None or sequencer is None:
            raise StorageError("the PostgreSQL store is not open")
        try:
            async with asyncio.timeout(self._timeout):
                row = await writer.submit(stream_id, args)
        except TimeoutError as exc:
            raise EventStoreTimeoutError(
                f"the append to stream {stream_id!r} was not confirmed within "
                f"{self._timeout} s; it was not written, unless the time ran out while the "
                "statement writing and committing its batch was running"
            ) from exc
        version = self._appended(stream_id, expected_version, row)
        if not events:
            return AppendResult(version, None)
        position = row[3]
        if position is None:  # stored without a position: a sequencer cycle numbers it
            position = await self._position_after_commit(events[-1].event_id)
        # Followers of the log: the events are readable now (or, after a position wait
        # that timed out, soon).
        self.changes.notify()
        return AppendResult(version, position)

    async def _position_after_commit(self, event_id: UUID) -> int | None:
        """The position of a committed event, or ``None`` if it takes over ``timeout``.

        The events are stored by now: a timeout must not turn that success into an error
        the caller would retry (and then fail with a wrong expected version).
        """
        assert self._sequencer is not None
        try:
            async with asyncio.timeout(self._timeout):
                return await self._sequencer.position_of(event_id)
        except TimeoutError:
            _log.warning(
                "evstore: an append committed but got no global position within %s s; "
                "is another process holding the sequencer lock?",
                self._timeout,
            )
            return None

    async def _direct(
        self, conn: Any, statement: str, args: Sequence[Any], doing: str
    ) -> asyncpg.Record:
        """Run an append or link function call on ``conn``, again after a lost race."""
        for attempt in range(_DIRECT_RETRIES):
            with translated(doing):
                row: asyncpg.Record = await conn.fetchrow(statement, *args)
            if row[0] != _codes.STATUS_RETRY:
                return row
            await asyncio.sleep(0.001 * 2 ** min(attempt, 6))
        raise StorageError(f"{doing} kept deadlocking or racing; gave up after {_DIRECT_RETRIES}")

    def _appended(self, stream_id: str, expected: ExpectedVersion | int, row: Any) -> int:
        """The new version of an append's outcome row, or raise its error."""
        status, version, deleted, _position, detail = row
        if status == _codes.STATUS_OK:
            return int(version)
        if status == _codes.STATUS_EXPECTATION:
            _raise_expectation(stream_id, expected, version, deleted)
        if status == _codes.STATUS_DUPLICATE:
            raise DuplicateEventError(
                f"event {detail} is already stored",
                stream_id=stream_id,
                event_id=UUID(detail) if detail else None,
            )
        raise StorageError(f"appending to stream {stream_id!r} failed: {detail}")

    async def link(
        self,
        stream_id: str,
        expected_version: ExpectedVersion | int,
        event_ids: Sequence[UUID],
        *,
        conn: Any = None,
    ) -> AppendResult:
        args = (stream_id, _expected_code(expected_version), list(event_ids))
        async with self._connection(conn) as c:
            row = await self._direct(c, self._sql.link, args, "linking")
        status, version, deleted, position, detail = row
        if status == _codes.STATUS_OK:
            if conn is None or not conn.is_in_transaction():
                self.changes.notify()  # committed: the links are readable now
            return AppendResult(version, position)
        if status == _codes.STATUS_EXPECTATION:
            _raise_expectation(stream_id, expected_version, version, deleted)
        if status == _codes.STATUS_NOT_FOUND:
            missing = [UUID(text) for text in detail.split(",")]
            raise EventNotFoundError(
                f"cannot link unknown event ids: {', '.join(map(str, missing))}",
                stream_id=stream_id,
                event_ids=missing,
            )
        if status == _codes.STATUS_DUPLICATE:
            raise DuplicateEventError(
                f"event {detail} is already in stream {stream_id!r}",
                stream_id=stream_id,
                event_id=UUID(detail),
            )
        raise StorageError(f"linking to stream {stream_id!r} failed: {detail}")

    async def delete_stream(
        self,
        stream_id: str,
        expected_version: ExpectedVersion | int,
        *,
        hard: bool,
        conn: Any = None,
    ) -> None:
        sql = self._sql
        with translated(f"deleting stream {stream_id!r}"):
            async with self._connection(conn) as c, c.transaction():
                row = await c.fetchrow(sql.stream_for_delete, stream_id)
                check_delete(
                    stream_id,
                    expected_version,
                    None if row is None else StreamState(row[1], row[2]),
                    hard=hard,
                    hard_deletes_enabled=self.enable_hard_deletes,
                )
                await c.execute(sql.hard_delete if hard else sql.soft_delete, row[0])

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
        meta_stream = None if is_metadata_stream(stream_id) else metadata_stream_of(stream_id)
        with translated(f"reading stream {stream_id!r}"):
            async with self._connection(conn) as c:
                # One round trip for the common case: the stream's row, its metadata and
                # the page as if nothing were hidden. Only when the metadata does hide
                # events is the page read again, with the visible bounds.
                found = await c.fetch(
                    self._sql.read_stream_at_once(forward=forward),
                    stream_id,
                    meta_stream,
                    start_version,
                    count,
                )
                if not found:
                    raise StreamNotFoundError(
                        f"stream {stream_id!r} does not exist", stream_id=stream_id
                    )
                key, version, deleted, metadata = found[0][:4]
                if deleted:
                    raise StreamDeletedError(
                        f"stream {stream_id!r} is deleted", stream_id=stream_id
                    )
                visible = (
                    UNRESTRICTED
                    if metadata is None
                    else visible_range(metadata, version, datetime.now(UTC))
                )
                if visible == UNRESTRICTED:
                    return [row[4:] for row in found if row[4] is not None]
                if forward:
                    low, high = max(start_version, visible.min_version, 1), version
                else:
                    high = version if start_version < 0 else min(start_version, version)
                    low = max(visible.min_version, 1)
                if count == 0 or low > high:
                    return []
                rows: list[EventRow] = await c.fetch(
                    self._sql.read_stream(forward=forward),
                    key,
                    low,
                    high,
                    count,
                    visible.min_created_at,
                )
        return rows

    async def read_all(
        self, start_position: int, count: int, *, forward: bool, conn: Any = None
    ) -> list[EventRow]:
        if count == 0:
            return []
        if forward:
            low, high = max(start_position, 1), _MAX_BIGINT
        else:
            low, high = 1, _MAX_BIGINT if start_position < 0 else start_position
        with translated("reading $all"):
            async with self._connection(conn) as c:
                rows: list[EventRow] = await c.fetch(
                    self._sql.read_all(forward=forward), low, high, count
                )
        return rows

    async def stream_info(self, stream_id: str, *, conn: Any = None) -> StreamInfo:
        with translated(f"reading stream {stream_id!r}"):
            async with self._connection(conn) as c:
                if stream_id == ALL_STREAM:
                    last_position, initialised_at = await c.fetchrow(self._sql.all_info)
                    return StreamInfo(ALL_STREAM, last_position, initialised_at, None, "created")
                row = await c.fetchrow(self._sql.stream_row, stream_id)
        if row is None:
            raise StreamNotFoundError(f"stream {stream_id!r} does not exist", stream_id=stream_id)
        version, created_at, deleted_at = row
        if deleted_at is not None:
            raise StreamDeletedError(f"stream {stream_id!r} is deleted", stream_id=stream_id)
        return StreamInfo(stream_id, version, created_at, None, "created")

    async def paginate_streams(
        self,
        *,
        page_size: int,
        page_number: int,
        search: str | None,
        sort_by: SortBy,
        sort_dir: SortDir,
    ) -> Page[StreamInfo]:
        statement = self._sql.paginate(_order_by(sort_by, sort_dir))
        with translated("listing streams"):
            async with self._connection() as c:
                rows = await c.fetch(
                    statement, search or None, page_size, page_size * (page_number - 1)
                )
        total = rows[0][0]
        entries = [
            StreamInfo(row[1], row[2], row[3], row[4], row[5]) for row in rows if row[1] is not None
        ]
        return Page(entries, page_number, page_size, total, total_pages(total, page_size))

    # -- following the log and persistent subscriptions ------------------------------

    async def watch_changes(self) -> None:
        """LISTEN on the store's channel on a dedicated connection (reconnected when it
        dies); every notification signals :attr:`changes`. Idempotent; a no-op with
        ``notifications=False``. Stopped by :meth:`close`."""
        if not self._notifications or self._listener is not None:
            return
        self._require_pool()
        listener = ChangeListener(
            self._dedicated("evstore-listen"),
            self._sql.channel,
            self.changes.notify,
            max_backoff=self.poll_interval,
        )
        self._listener = listener  # before the await: a concurrent call returns at once
        await listener.start()

    async def subscription_checkpoint(self, stream_id: str, name: str, start_from: int) -> int:
        sql = self._sql
        with translated(f"reading subscription {name!r} of {stream_id!r}"):
            async with self._connection() as c:
                # Two statements, not one: when a concurrent caller creates the row, the
                # INSERT waits for it and does nothing, and only a later statement's
                # snapshot sees that row. A row deleted in between is created again.
                for _ in range(_DIRECT_RETRIES):
                    await c.execute(sql.create_subscription, stream_id, name, start_from)
                    last_seen: int | None = await c.fetchval(
                        sql.subscription_checkpoint, stream_id, name
                    )
                    if last_seen is not None:
                        return last_seen
        raise StorageError(
            f"subscription {name!r} of {stream_id!r} kept disappearing while it was created"
        )

    async def store_checkpoint(self, stream_id: str, name: str, last_seen: int) -> None:
        with translated(f"storing the checkpoint of subscription {name!r}"):
            async with self._connection() as c:
                await c.execute(self._sql.store_checkpoint, stream_id, name, last_seen)

    async def delete_subscription(self, stream_id: str, name: str) -> None:
        with translated(f"deleting subscription {name!r} of {stream_id!r}"):
            async with self._connection() as c:
                await c.execute(self._sql.delete_subscription, stream_id, name)

    async def list_subscriptions(self) -> list[SubscriptionRecord]:
        with translated("listing subscriptions"):
            async with self._connection() as c:
                rows = await c.fetch(self._sql.list_subscriptions)
        return [SubscriptionRecord(*row) for row in rows]

    async def park(self, stream_id: str, name: str, entries: Sequence[ParkedEntry]) -> None:
        if not entries:
            return
        args = [
            (
                stream_id,
                name,
                entry.event_number,
                entry.position,
                entry.reason,
                entry.retry_count,
                entry.parked_at,
                entry.replay_requested,
            )
            for entry in entries
        ]
        # One statement per entry, in order, in one transaction: the same event twice in
        # ``entries`` ends up once, at the place of its last occurrence.
        with translated(f"parking events of subscription {name!r}"):
            async with self._connection() as c, c.transaction():
                await c.executemany(self._sql.park, args)

    async def parked(self, stream_id: str, name: str) -> list[ParkedEntry]:
        with translated(f"reading the parked events of subscription {name!r}"):
            async with self._connection() as c:
                rows = await c.fetch(self._sql.parked, stream_id, name)
        return [ParkedEntry(*row) for row in rows]

    async def request_replay(self, stream_id: str, name: str) -> int:
        with translated(f"replaying the parked events of subscription {name!r}"):
            async with self._connection() as c:
                status: str = await c.execute(self._sql.request_replay, stream_id, name)
        return int(status.split()[-1])  # "UPDATE <rows>"

    async def unpark(self, stream_id: str, name: str, event_numbers: Sequence[int]) -> None:
        if not event_numbers:
            return
        with translated(f"unparking events of subscription {name!r}"):
            async with self._connection() as c:
                await c.execute(self._sql.unpark, stream_id, name, list(event_numbers))

    async def try_lock_subscription(self, stream_id: str, name: str) -> SubscriptionLock | None:
        if self._locks is None:
            raise StorageError("the PostgreSQL store is not open")
        return await self._locks.try_lock(stream_id, name)

    # -- snapshots -------------------------------------------------------------------

    async def read_snapshot(self, source_id: str) -> StoredSnapshot:
        with translated("reading a snapshot"):
            async with self._connection() as c:
                row = await c.fetchrow(self._sql.read_snapshot, source_id)
        if row is None:
            raise SnapshotNotFoundError(
                f"no snapshot for source {source_id!r}", source_id=source_id
            )
        return StoredSnapshot(*row)

    async def record_snapshot(self, snapshot: StoredSnapshot) -> None:
        data: Any = snapshot.data
        metadata: Any = snapshot.metadata
        if not self.supports_binary:
            data = _jsonb_text(data, "snapshot.data")
            metadata = None if metadata is None else _jsonb_text(metadata, "snapshot.metadata")
        with translated("recording a snapshot"):
            async with self._connection() as c:
                await c.execute(
                    self._sql.record_snapshot,
                    snapshot.source_id,
                    snapshot.source_version,
                    snapshot.source_type,
                    data,
                    metadata,
                    snapshot.flags,
                )

    async def delete_snapshot(self, source_id: str) -> None:
        with translated("deleting a snapshot"):
            async with self._connection() as c:
                await c.execute(self._sql.delete_snapshot, source_id)


# A JSON escape of NUL (\u0000) not itself escaped: jsonb cannot store that character.
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def _jsonb_text(value: bytes, argument: str) -> str:
    """JSON bytes as text for a jsonb column, refusing what jsonb cannot hold.

    Checked here rather than left to the server: a value the server refuses while reading
    the parameters would abort the whole group-commit batch, not just this append.
    """
    if _JSON_NUL.search(value):
        raise InvalidArgumentError(
            f"{argument} holds a NUL character (\\u0000), which jsonb columns cannot store",
            argument=argument,
        )
    return value.decode()
