"""``AsyncEventStore``: the public façade over one storage backend.

The façade owns everything that does not need the database: argument checks, payload
serialisation, one ``created_at`` per append, timeouts, and turning stored rows into
``RecordedEvent``. Semantics that need atomicity live in the backends.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext, suppress
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar
from uuid import UUID

import orjson

from evstore._config import StoreConfig, make_backend
from evstore._tasks import abandon
from evstore._types import (
    ALL_STREAM,
    ANY_VERSION,
    AppendResult,
    EventData,
    ExpectedVersion,
    Page,
    RecordedEvent,
    RecordedEventBuilder,
    SnapshotData,
    StreamInfo,
    coerce_uuid,
)
from evstore._validation import (
    MAX_INT,
    MAX_STREAM_ID_LENGTH,
    check_choice,
    check_expected_version_arg,
    check_int,
    check_stream_id,
    check_text,
    check_writable_stream_id,
)
from evstore.backends.base import (
    DATA_RAW,
    METADATA_RAW,
    EventRow,
    NewEvent,
    SortBy,
    SortDir,
    StorageBackend,
    StoredSnapshot,
)
from evstore.backends.rules import METADATA_EVENT_TYPE, is_metadata_stream, metadata_stream_of
from evstore.errors import (
    EventStoreTimeoutError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    StreamNotFoundError,
)
from evstore.serialization import JsonSerializer, Serializer
from evstore.subscriptions._api import SubscriptionMethods
from evstore.subscriptions._registry import SubscriptionRegistry

__all__ = ["AsyncEventStore"]

T = TypeVar("T")

_loads = orjson.loads
_BYTES_LIKE = (bytes, bytearray, memoryview)
"""Payload types stored as given (not serialised)."""

_HEAD_SHARE = 8
"""Iterators hand out the first 1/8 of a full page before reading the next one ahead."""

SORT_BY: tuple[SortBy, ...] = ("created_at", "stream_id", "stream_version", "deleted_at", "status")
SORT_DIR: tuple[SortDir, ...] = ("asc", "desc")


class AsyncEventStore(SubscriptionMethods):
    """An event store on one database, used from asyncio.

    Args:
        url: ``memory://``, ``sqlite:///events.db``, ``sqlite://:memory:`` or
            ``postgresql://…``; default ``$EVSTORE_URL`` or ``sqlite:///evstore.db``.
        schema: PostgreSQL schema holding the store (default ``public``).
        serializer: turns payloads into bytes (default :class:`JsonSerializer`).
        enable_hard_deletes: allow ``delete_stream(..., hard=True)`` (default False).
        pool_size: PostgreSQL connections in the pool (default 10).
        timeout: seconds an operation may take before ``EventStoreTimeoutError``
            (default 15; ``None`` for no limit).
        poll_interval: seconds between polls when no notification arrives (default 0.5).
        notifications: use LISTEN/NOTIFY on PostgreSQL (default True; False polls only).
        session_mode_url: PostgreSQL URL for long-lived LISTEN / lock connections.
        column_data_type: PostgreSQL payload columns, ``"bytea"`` (default) or ``"jsonb"``.
        auto_init: create the tables on open when missing (default True).

    Raises:
        ConfigurationError: an unknown option, a bad value, or an unsupported URL.

    Use it as ``async with AsyncEventStore(url) as store:`` (or ``await store.open()`` and
    ``await store.close()``).
    """

    def __init__(self, url: str | None = None, **options: Any) -> None:
        self._config = StoreConfig.from_options(url, options)
        self._backend: StorageBackend = make_backend(self._config)
        self._serializer: Serializer = self._config.serializer
        self._opened = False
        # Writes through this store that can change what a page already read shows
        # (deletes, stream metadata), finished or not: an iterator drops a page it read
        # ahead of one (see _stream). Appends and links only add after what was read.
        self._reshapes = 0
        self._subscriptions = SubscriptionRegistry(
            self._backend, self._read_forward, self._stream_version
        )

    # -- lifecycle -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The URL this store was opened on."""
        return self._config.url

    @property
    def serializer(self) -> Serializer:
        """The store's serializer."""
        return self._serializer

    async def open(self) -> Self:
        """Connect (and initialise the database when ``auto_init``). Idempotent."""
        if not self._opened:
            await self._run(self._backend.open(auto_init=self._config.auto_init))
            self._opened = True
        return self

    async def close(self) -> None:
        """Finish pending writes and disconnect. Idempotent."""
        if self._opened:
            self._opened = False
            try:
                await self._subscriptions.close()
            finally:
                await self._backend.close()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @classmethod
    async def _manage(
        cls,
        url: str | None,
        options: dict[str, Any],
        action: Callable[[StorageBackend], Awaitable[str]],
    ) -> str:
        config = StoreConfig.from_options(url, options)
        backend = make_backend(config)
        try:
            return await action(backend)
        finally:
            await backend.close()

    @classmethod
    async def create(cls, url: str | None = None, **options: Any) -> str:
        """Create the database (and schema) if missing. Returns what was done."""
        return await cls._manage(url, options, lambda b: b.create())

    @classmethod
    async def init(cls, url: str | None = None, **options: Any) -> str:
        """Create evstore's tables if missing. Returns what was done."""
        return await cls._manage(url, options, lambda b: b.init())

    @classmethod
    async def migrate(cls, url: str | None = None, **options: Any) -> str:
        """Upgrade the tables to this version's schema; safe to run concurrently."""
        return await cls._manage(url, options, lambda b: b.migrate())

    @classmethod
    async def drop(cls, url: str | None = None, **options: Any) -> str:
        """Remove evstore's tables (and a non-default schema). Returns what was done."""
        return await cls._manage(url, options, lambda b: b.drop())

    @classmethod
    async def reset(cls, url: str | None = None, **options: Any) -> str:
        """Delete all streams, events, subscriptions and snapshots; keep the tables."""
        return await cls._manage(url, options, lambda b: b.reset())

    @classmethod
    async def schema_version(cls, url: str | None = None, **options: Any) -> str | None:
        """The recorded schema version, or ``None`` when the database is not initialised."""
        config = StoreConfig.from_options(url, options)
        backend = make_backend(config)
        try:
            return await backend.schema_version()
        finally:
            await backend.close()

    async def _run(self, operation: Awaitable[T], *, timed: bool = True) -> T:
        timeout = self._config.timeout if timed else None
        context: AbstractAsyncContextManager[Any] = (
            asyncio.timeout(timeout) if timeout is not None else nullcontext()
        )
        try:
            async with context:
                return await operation
        except TimeoutError as exc:
            if isinstance(exc, EventStoreTimeoutError):
                raise
            raise EventStoreTimeoutError(
                f"the operation did not finish within {timeout} s"
            ) from exc

    async def _run_reshaping(self, operation: Awaitable[T], *, timed: bool = True) -> T:
        """``_run`` for a write that can change pages already read (see ``_reshapes``)."""
        try:
            return await self._run(operation, timed=timed)
        finally:
            self._reshapes += 1

    # -- serialisation ---------------------------------------------------------------

    def _encode(self, value: Any, raw_flag: int, argument: str) -> tuple[bytes, int]:
        if isinstance(value, _BYTES_LIKE):
            if not self._backend.supports_binary:
                raise InvalidArgumentError(
                    f"{argument} is bytes, but this store keeps payloads as jsonb",
                    argument=argument,
                )
            return bytes(value), raw_flag
        try:
            return self._serializer.serialize(value), 0
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(
                f"{argument} cannot be serialised: {exc}", argument=argument
            ) from exc

    def _new_events(self, events: object) -> list[NewEvent]:
        if isinstance(events, (EventData, str, bytes)) or not isinstance(events, Sequence):
            raise InvalidArgumentTypeError(
                f"events must be a list of EventData, got {type(events).__name__}",
                argument="events",
            )
        # Runs once per appended event: the common case (a payload for the serializer, no
        # metadata) takes the short way, argument names are only spelled out for errors.
        serialize = self._serializer.serialize
        encoded: list[NewEvent] = []
        for event in events:
            if event.__class__ is not EventData and not isinstance(event, EventData):
                raise InvalidArgumentTypeError(
                    f"events[{len(encoded)}] must be an EventData, got {type(event).__name__}",
                    argument="events",
                )
            data = event.data
            if event.metadata is None and not isinstance(data, _BYTES_LIKE):
                try:
                    payload = serialize(data)
                except (TypeError, ValueError) as exc:
                    argument = f"events[{len(encoded)}].data"
                    raise InvalidArgumentError(
                        f"{argument} cannot be serialised: {exc}", argument=argument
                    ) from exc
                encoded.append(
                    NewEvent(
                        event.event_id,
                        event.event_type,
                        payload,
                        None,
                        0,
                        event.correlation_id,
                        event.causation_id,
                    )
                )
            else:
                encoded.append(self._new_event(event, len(encoded)))
        return encoded

    def _new_event(self, event: EventData, index: int) -> NewEvent:
        """One event with bytes payloads or metadata (the general case)."""
        data, flags = self._encode(event.data, DATA_RAW, f"events[{index}].data")
        metadata: bytes | None = None
        if event.metadata is not None:
            metadata, meta_flag = self._encode(
                event.metadata, METADATA_RAW, f"events[{index}].metadata"
            )
            flags |= meta_flag
        return NewEvent(
            event.event_id,
            event.event_type,
            data,
            metadata,
            flags,
            event.correlation_id,
            event.causation_id,
        )

    def _decode(self, rows: list[EventRow]) -> list[RecordedEvent]:
        # The read path's hot loop (one pass per event read): rows unpacked once, events
        # built through RecordedEvent's slots twin, and plain JSON decoded by orjson
        # directly when the serializer is the default one with no registered types.
        serializer = self._serializer
        deserialize = serializer.deserialize
        plain = type(serializer) is JsonSerializer and serializer.decodes_plain_json
        decoded: list[RecordedEvent] = []
        append = decoded.append
        builder, recorded = RecordedEventBuilder, RecordedEvent
        for (
            number,
            event_id,
            stream_id,
            version,
            position,
            event_type,
            data,
            metadata,
            flags,
            correlation_id,
            causation_id,
            created_at,
        ) in rows:
            if flags & DATA_RAW == 0:
                data = _loads(data) if plain else deserialize(data, event_type)
            if metadata is not None and flags & METADATA_RAW == 0:
                metadata = _loads(metadata) if plain else deserialize(metadata, None)
            event = builder(
                event_id,
                number,
                stream_id,
                version,
                position,
                event_type,
                data,
                metadata,
                correlation_id,
                causation_id,
                created_at,
            )
            event.__class__ = recorded
            append(event)
        return decoded

    # -- writing ---------------------------------------------------------------------

    async def append_to_stream(
        self,
        stream_id: str,
        expected_version: ExpectedVersion | int,
        events: Sequence[EventData],
        *,
        conn: Any = None,
        created_at: datetime | None = None,
    ) -> AppendResult:
        """Append ``events`` to a stream, atomically, if ``expected_version`` holds.

        Args:
            stream_id: the stream (created by its first append); never ``"$all"``.
            expected_version: ``ANY_VERSION``, ``NO_STREAM``, ``STREAM_EXISTS`` or the
                stream's current version (0 = no events yet).
            events: the events, in order. An empty list checks the expectation only.
            conn: an asyncpg connection inside a transaction to append in (PostgreSQL).
            created_at: a timezone-aware time to record instead of now, for every event of
                this append (imports, migrations from another store).

        Returns:
            The stream's new version and the global position of the last event.

        Raises:
            WrongExpectedVersionError, StreamExistsError, StreamNotFoundError,
            StreamDeletedError, DuplicateEventError, CannotAppendToAllStreamError,
            InvalidArgumentError: see the expected-version rules in the README.
        """
        stream_id = check_writable_stream_id(stream_id)
        expected = check_expected_version_arg(expected_version)
        new_events = self._new_events(events)
        if created_at is None:
            created_at = datetime.now(UTC)
        elif not isinstance(created_at, datetime):
            raise InvalidArgumentTypeError("created_at must be a datetime", argument="created_at")
        elif created_at.tzinfo is None or created_at.utcoffset() is None:
            raise InvalidArgumentError("created_at must be timezone-aware", argument="created_at")
        else:
            created_at = created_at.astimezone(UTC)
        # An append of its own to a metadata stream sets that stream's metadata.
        run = self._run_reshaping if is_metadata_stream(stream_id) else self._run
        return await run(
            self._backend.append(stream_id, expected, new_events, created_at, conn=conn),
            timed=not self._backend.times_appends,
        )

    async def link_to_stream(
        self,
        stream_id: str,
        expected_version: ExpectedVersion | int,
        events_or_event_ids: Sequence[RecordedEvent | UUID | str],
        *,
        conn: Any = None,
    ) -> AppendResult:
        """Add existing events to another stream without copying them.

        A linked event keeps its original ``stream_id`` and ``stream_version``; its
        ``event_number`` in the target is the link's position. Links never enter ``$all``.

        Raises:
            EventNotFoundError: some ids are unknown (nothing is linked).
            DuplicateEventError: an event is already in the target stream.
            plus the expected-version errors of :meth:`append_to_stream`.
        """
        stream_id = check_writable_stream_id(stream_id)
        expected = check_expected_version_arg(expected_version)
        if isinstance(events_or_event_ids, (str, bytes, RecordedEvent)) or not isinstance(
            events_or_event_ids, Sequence
        ):
            raise InvalidArgumentTypeError(
                "events_or_event_ids must be a list of RecordedEvent, UUID or UUID strings",
                argument="events_or_event_ids",
            )
        event_ids = [
            item.event_id
            if isinstance(item, RecordedEvent)
            else coerce_uuid(item, f"events_or_event_ids[{index}]")
            for index, item in enumerate(events_or_event_ids)
        ]
        return await self._run(self._backend.link(stream_id, expected, event_ids, conn=conn))

    async def delete_stream(
        self,
        stream_id: str,
        expected_version: ExpectedVersion | int,
        *,
        hard: bool = False,
        conn: Any = None,
    ) -> None:
        """Delete a stream.

        Soft (default): the stream refuses reads and appends; its events stay in ``$all``
        and in streams linking them. Hard (``enable_hard_deletes=True`` only): the events
        are removed everywhere, ``$all`` keeps the gap, and the stream id can be reused.

        Raises:
            NotSupportedError: a hard delete while hard deletes are disabled.
            StreamNotFoundError, StreamDeletedError, WrongExpectedVersionError,
            StreamExistsError, CannotDeleteAllStreamError.
        """
        stream_id = check_writable_stream_id(stream_id, deleting=True)
        expected = check_expected_version_arg(expected_version)
        if not isinstance(hard, bool):
            raise InvalidArgumentTypeError("hard must be a bool", argument="hard")
        await self._run_reshaping(
            self._backend.delete_stream(stream_id, expected, hard=hard, conn=conn)
        )

    # -- reading ---------------------------------------------------------------------

    async def _read_rows(
        self, stream_id: str, start: int, count: int, *, forward: bool, conn: Any
    ) -> list[EventRow]:
        if stream_id == ALL_STREAM:
            return await self._run(self._backend.read_all(start, count, forward=forward, conn=conn))
        return await self._run(
            self._backend.read_stream(stream_id, start, count, forward=forward, conn=conn)
        )

    async def _read(
        self, stream_id: str, start: int, count: int, *, forward: bool, conn: Any
    ) -> list[RecordedEvent]:
        return self._decode(
            await self._read_rows(stream_id, start, count, forward=forward, conn=conn)
        )

    async def _read_forward(self, stream_id: str, start: int, count: int) -> list[RecordedEvent]:
        return await self._read(stream_id, start, count, forward=True, conn=None)

    async def _stream_version(self, stream_id: str) -> int:
        info = await self._run(self._backend.stream_info(stream_id))
        return info.stream_version

    async def read_stream_forward(
        self, stream_id: str, start_version: int = 0, count: int = 1000, *, conn: Any = None
    ) -> list[RecordedEvent]:
        """Up to ``count`` events with ``event_number >= start_version``, ascending.

        ``"$all"`` reads the global log by position.

        Raises:
            StreamNotFoundError, StreamDeletedError.
        """
        stream_id = check_stream_id(stream_id)
        start = check_int(start_version, "start_version", minimum=-1)
        count = check_int(count, "count", minimum=0)
        return await self._read(stream_id, start, count, forward=True, conn=conn)

    async def read_stream_backward(
        self, stream_id: str, start_version: int = -1, count: int = 1000, *, conn: Any = None
    ) -> list[RecordedEvent]:
        """Up to ``count`` events with ``event_number <= start_version`` (-1: from the end),
        descending.

        Raises:
            StreamNotFoundError, StreamDeletedError.
        """
        stream_id = check_stream_id(stream_id)
        start = check_int(start_version, "start_version", minimum=-1)
        count = check_int(count, "count", minimum=0)
        return await self._read(stream_id, start, count, forward=False, conn=conn)

    async def read_all_streams_forward(
        self, start_position: int = 0, count: int = 1000, *, conn: Any = None
    ) -> list[RecordedEvent]:
        """Up to ``count`` events of ``$all`` from ``start_position`` (inclusive), ascending."""
        start = check_int(start_position, "start_position", minimum=-1)
        count = check_int(count, "count", minimum=0)
        return await self._read(ALL_STREAM, start, count, forward=True, conn=conn)

    async def read_all_streams_backward(
        self, start_position: int = -1, count: int = 1000, *, conn: Any = None
    ) -> list[RecordedEvent]:
        """Up to ``count`` events of ``$all`` down from ``start_position`` (-1: the end)."""
        start = check_int(start_position, "start_position", minimum=-1)
        count = check_int(count, "count", minimum=0)
        return await self._read(ALL_STREAM, start, count, forward=False, conn=conn)

    def _stream(
        self, stream_id: str, start: int, batch_size: int, *, forward: bool
    ) -> AsyncIterator[RecordedEvent]:
        # Read-ahead: once the caller goes on past the first events of a full page, the
        # next page's query is sent, and only then is the rest of this page decoded and
        # handed out. The database (another process, often another core) works on page
        # n + 1 while this process builds the events of page n, so a long read costs about
        # the larger of the two instead of their sum; a caller that takes only the first
        # events (the latest one, say) and stops costs no read ahead at all. The one
        # ``sleep(0)`` lets the new task run up to its first real wait, which is after the
        # query has been written to the socket: a caller that consumes a page without
        # awaiting anything would otherwise keep the query from being sent at all. At most
        # one query is ahead, so memory stays bounded by two pages, and the pool sees no
        # more than one connection per iterator at a time.
        #
        # A page read ahead is a guess made early, and the iterator behaves as if every
        # page were read when the caller asks for it. The guess is dropped and the page
        # read again when it failed (it may have timed out while the caller was busy) or
        # when this store deleted a stream or set stream metadata meanwhile (a caller doing
        # so inside the loop sees the effect on the next page); appends, which only add
        # after what was read, keep it. The iterator ends only on a short page read when
        # asked, so it still sees events appended while it runs.
        step = 1 if forward else -1

        def read(first: int) -> Awaitable[list[EventRow]]:
            return self._read_rows(stream_id, first, batch_size, forward=forward, conn=None)

        async def pages() -> AsyncIterator[RecordedEvent]:
            next_start = start
            ahead: asyncio.Task[list[EventRow]] | None = None
            reshapes = 0  # self._reshapes when the page ahead was asked for
            try:
                while True:
                    rows: list[EventRow] | None = None
                    if ahead is not None:
                        guess, ahead = ahead, None
                        if self._reshapes == reshapes:
                            with suppress(Exception):
                                rows = await guess
                        else:
                            abandon(guess)
                    fresh = rows is None
                    if rows is None:
                        rows = await read(next_start)
                    if rows:
                        # After the last event number, so hard-delete gaps are skipped.
                        next_start = rows[-1][0] + step
                    more = len(rows) == batch_size and next_start >= 1
                    head = max(1, len(rows) // _HEAD_SHARE)
                    for event in self._decode(rows[:head]):
                        yield event
                    if more and head < len(rows):
                        reshapes = self._reshapes
                        ahead = asyncio.ensure_future(read(next_start))
                        await asyncio.sleep(0)
                    for event in self._decode(rows[head:]):
                        yield event
                    if not more and (fresh or next_start < 1):
                        return
            finally:
                if ahead is not None:
                    abandon(ahead)

        return pages()

    def _stream_args(
        self, stream_id: object, start: object, batch_size: object, start_name: str
    ) -> tuple[str, int, int]:
        return (
            check_stream_id(stream_id),
            check_int(start, start_name, minimum=-1),
            check_int(batch_size, "batch_size", minimum=1),
        )

    def stream_forward(
        self, stream_id: str, start_version: int = 0, *, batch_size: int = 1000
    ) -> AsyncIterator[RecordedEvent]:
        """Iterate a stream forward, reading ``batch_size`` events per query.

        A missing or deleted stream raises on the first iteration, before any event.
        """
        args = self._stream_args(stream_id, start_version, batch_size, "start_version")
        return self._stream(*args, forward=True)

    def stream_backward(
        self, stream_id: str, start_version: int = -1, *, batch_size: int = 1000
    ) -> AsyncIterator[RecordedEvent]:
        """Iterate a stream backward from ``start_version`` (-1: the end)."""
        args = self._stream_args(stream_id, start_version, batch_size, "start_version")
        return self._stream(*args, forward=False)

    def stream_all_forward(
        self, start_position: int = 0, *, batch_size: int = 1000
    ) -> AsyncIterator[RecordedEvent]:
        """Iterate ``$all`` forward from ``start_position``."""
        args = self._stream_args(ALL_STREAM, start_position, batch_size, "start_position")
        return self._stream(*args, forward=True)

    def stream_all_backward(
        self, start_position: int = -1, *, batch_size: int = 1000
    ) -> AsyncIterator[RecordedEvent]:
        """Iterate ``$all`` backward from ``start_position`` (-1: the end)."""
        args = self._stream_args(ALL_STREAM, start_position, batch_size, "start_position")
        return self._stream(*args, forward=False)

    async def stream_info(self, stream_id: str, *, conn: Any = None) -> StreamInfo:
        """Version, creation and deletion of a stream (``"$all"`` included).

        Raises:
            StreamNotFoundError, StreamDeletedError.
        """
        stream_id = check_stream_id(stream_id)
        return await self._run(self._backend.stream_info(stream_id, conn=conn))

    async def paginate_streams(
        self,
        *,
        page_size: int = 50,
        page_number: int = 1,
        search: str | None = None,
        sort_by: SortBy = "created_at",
        sort_dir: SortDir = "asc",
    ) -> Page[StreamInfo]:
        """One page of the streams, ``$all`` included, soft-deleted ones marked ``deleted``.

        Args:
            page_size: entries per page (>= 1).
            page_number: 1-based page.
            search: keep streams whose id contains this text (case-sensitive).
            sort_by: ``created_at`` (ties in creation order), ``stream_id``,
                ``stream_version``, ``deleted_at`` or ``status``.
            sort_dir: ``asc`` or ``desc``.
        """
        page_size = check_int(page_size, "page_size", minimum=1)
        page_number = check_int(page_number, "page_number", minimum=1, maximum=MAX_INT // page_size)
        if search is not None and not isinstance(search, str):
            raise InvalidArgumentTypeError("search must be a str or None", argument="search")
        if search:
            check_text(search, "search", max_length=MAX_STREAM_ID_LENGTH)
        check_choice(sort_by, "sort_by", SORT_BY)
        check_choice(sort_dir, "sort_dir", SORT_DIR)
        return await self._run(
            self._backend.paginate_streams(
                page_size=page_size,
                page_number=page_number,
                search=search or None,
                sort_by=sort_by,
                sort_dir=sort_dir,
            )
        )

    # -- stream metadata -------------------------------------------------------------

    async def get_stream_metadata(self, stream_id: str) -> dict[str, Any]:
        """The stream's metadata (``{}`` when none was set).

        Metadata lives as ``$metadata`` events in the stream ``"$$" + stream_id``, as in
        KurrentDB; the latest event wins.
        """
        stream_id = check_stream_id(stream_id)
        try:
            rows = await self._run(
                self._backend.read_stream(metadata_stream_of(stream_id), -1, 1, forward=False)
            )
        except StreamNotFoundError:
            return {}
        if not rows:
            return {}
        # Metadata is always JSON, whatever the store's serializer (KurrentDB's format).
        value = orjson.loads(rows[0][6])
        return value if isinstance(value, dict) else {}

    async def set_stream_metadata(
        self,
        stream_id: str,
        metadata: dict[str, Any],
        expected_version: ExpectedVersion | int = ANY_VERSION,
    ) -> AppendResult:
        """Replace the stream's metadata.

        ``$maxAge`` (seconds), ``$maxCount`` and ``$tb`` (events with version <= $tb are
        hidden) are enforced on reads of the stream; other keys are free-form.
        ``expected_version`` is checked against the metadata stream's version.
        """
        stream_id = check_stream_id(stream_id)
        if not isinstance(metadata, dict):
            raise InvalidArgumentTypeError("metadata must be a dict", argument="metadata")
        for key in ("$maxAge", "$maxCount", "$tb"):
            value = metadata.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT
            ):
                raise InvalidArgumentError(
                    f"metadata[{key!r}] must be an int from 0 to {MAX_INT}, got {value!r}",
                    argument="metadata",
                )
        expected = check_expected_version_arg(expected_version)
        try:
            payload = orjson.dumps(metadata, option=orjson.OPT_NON_STR_KEYS)
        except orjson.JSONEncodeError as exc:
            raise InvalidArgumentError(
                f"metadata cannot be encoded as JSON: {exc}", argument="metadata"
            ) from exc
        event = NewEvent(
            uuid.uuid4(),
            METADATA_EVENT_TYPE,
            payload,
            None,
            DATA_RAW if self._backend.supports_binary else 0,
            None,
            None,
        )
        return await self._run_reshaping(
            self._backend.append(
                metadata_stream_of(stream_id), expected, [event], datetime.now(UTC)
            ),
            timed=not self._backend.times_appends,
        )

    # -- snapshots -------------------------------------------------------------------

    async def read_snapshot(self, source_id: str) -> SnapshotData:
        """The latest snapshot of ``source_id``.

        Raises:
            SnapshotNotFoundError: none is recorded.
        """
        source_id = check_text(source_id, "source_id", max_length=2048)
        stored = await self._run(self._backend.read_snapshot(source_id))
        data = (
            stored.data
            if stored.flags & DATA_RAW
            else self._serializer.deserialize(stored.data, stored.source_type)
        )
        metadata = stored.metadata
        if metadata is not None and not stored.flags & METADATA_RAW:
            metadata = self._serializer.deserialize(metadata, None)
        return SnapshotData(
            stored.source_id,
            stored.source_version,
            stored.source_type,
            data,
            metadata,
            stored.created_at,
        )

    async def record_snapshot(self, snapshot: SnapshotData) -> None:
        """Record ``snapshot``, replacing any earlier one of the same source."""
        if not isinstance(snapshot, SnapshotData):
            raise InvalidArgumentTypeError(
                f"snapshot must be a SnapshotData, got {type(snapshot).__name__}",
                argument="snapshot",
            )
        source_id = check_text(snapshot.source_id, "snapshot.source_id", max_length=2048)
        version = check_int(snapshot.source_version, "snapshot.source_version", minimum=0)
        source_type = check_text(snapshot.source_type, "snapshot.source_type")
        if snapshot.data is None:
            raise InvalidArgumentError("snapshot.data must not be None", argument="snapshot.data")
        data, flags = self._encode(snapshot.data, DATA_RAW, "snapshot.data")
        metadata = None
        if snapshot.metadata is not None:
            metadata, meta_flag = self._encode(snapshot.metadata, METADATA_RAW, "snapshot.metadata")
            flags |= meta_flag
        await self._run(
            self._backend.record_snapshot(
                StoredSnapshot(source_id, version, source_type, data, metadata, flags)
            )
        )

    async def delete_snapshot(self, source_id: str) -> None:
        """Remove the snapshot of ``source_id``, if any."""
        source_id = check_text(source_id, "source_id", max_length=2048)
        await self._run(self._backend.delete_snapshot(source_id))
