"""The storage contract every backend implements.

The store façade validates arguments and serialises payloads; a backend stores bytes and
enforces the semantics that need the database's atomicity: expected versions, duplicate ids,
links, deletes and global positions. The rules that do not need the database (the
expected-version table, stream-metadata visibility) live in :mod:`evstore.backends.rules`
so every backend applies the same ones.

Backends never import the façade.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple
from uuid import UUID

from evstore._types import AppendResult, ExpectedVersion, Page, StreamInfo
from evstore.backends.signal import ChangeSignal
from evstore.errors import NotSupportedError

__all__ = [
    "DATA_RAW",
    "JSON_CONTENT",
    "METADATA_RAW",
    "EventRow",
    "NewEvent",
    "ParkedEntry",
    "SortBy",
    "SortDir",
    "StorageBackend",
    "StoredSnapshot",
    "SubscriptionLock",
    "SubscriptionRecord",
    "refuse_conn",
]

DATA_RAW = 1
"""Flag bit: the event's data was given as ``bytes`` and is returned as ``bytes``."""
METADATA_RAW = 2
"""Flag bit: the event's metadata was given as ``bytes`` and is returned as ``bytes``."""
JSON_CONTENT = 4
"""Flag bit (the server's): raw data that a gRPC client sent as ``application/json``, so it
is read back over gRPC with that content type. Backends store flags without reading them."""

SortBy = Literal["created_at", "stream_id", "stream_version", "deleted_at", "status"]
SortDir = Literal["asc", "desc"]

EventRow = Sequence[Any]
"""One stored event as a backend returns it, a row in this column order:

0 ``event_number`` (int), 1 ``event_id`` (UUID), 2 ``stream_id`` (str, the original
stream), 3 ``stream_version`` (int, in the original stream), 4 ``position`` (int, global),
5 ``event_type`` (str), 6 ``data`` (bytes or JSON str), 7 ``metadata`` (bytes, str or None),
8 ``flags`` (int: ``DATA_RAW`` | ``METADATA_RAW``), 9 ``correlation_id`` (UUID or None),
10 ``causation_id`` (UUID or None), 11 ``created_at`` (aware UTC datetime).

Rows rather than objects: reads are the hottest path, and the façade builds the public
``RecordedEvent`` from each row once.
"""


class NewEvent(NamedTuple):
    """An event ready to store: payloads already serialised.

    A named tuple rather than a frozen dataclass: the façade builds one per appended
    event, and a tuple is built several times faster.
    """

    event_id: UUID
    event_type: str
    data: bytes
    metadata: bytes | None
    flags: int
    correlation_id: UUID | None
    causation_id: UUID | None


@dataclass(frozen=True, slots=True)
class StoredSnapshot:
    """A snapshot with serialised payloads."""

    source_id: str
    source_version: int
    source_type: str
    data: bytes
    metadata: bytes | None
    flags: int
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    """A persistent subscription's stored row.

    Attributes:
        stream_id: the subscribed stream (``"$all"`` for all streams).
        subscription_name: the subscription's name.
        last_seen: the checkpoint: the event number up to which every event is handled
            (0 = none); delivery resumes after it.
        created_at: when the row was created (UTC).
        parked_count: events parked for it.
    """

    stream_id: str
    subscription_name: str
    last_seen: int
    created_at: datetime
    parked_count: int = 0


@dataclass(frozen=True, slots=True)
class ParkedEntry:
    """One parked event of a subscription.

    Attributes:
        event_number: the number the subscription delivered it under (stream version, link
            number, or global position for ``"$all"``).
        position: the event's global position (to read it back from ``$all``).
        reason: why it was parked (``"nack"``, ``"max retries"``, ...).
        retry_count: how many times it had been retried when parked.
        parked_at: when it was parked (UTC).
        replay_requested: ``replay_parked`` asked for it to be delivered again.
    """

    event_number: int
    position: int
    reason: str
    retry_count: int
    parked_at: datetime
    replay_requested: bool = False


class SubscriptionLock(abc.ABC):
    """Ownership of a named persistent subscription, held by one process at a time.

    It is released by :meth:`release` or when the holder dies (PostgreSQL: the session that
    holds the advisory lock ends; SQLite: the process holding the lock file exits).
    """

    @property
    @abc.abstractmethod
    def lost(self) -> bool:
        """True once the lock was lost without :meth:`release` (its connection died)."""

    @abc.abstractmethod
    async def wait_lost(self) -> None:
        """Return when the lock is lost (never returns while it is held)."""

    @abc.abstractmethod
    async def release(self) -> None:
        """Give the lock up. Idempotent."""


class StorageBackend(abc.ABC):
    """One database holding one event store.

    All methods are coroutines. Arguments arrive validated (types, ranges, ``"$all"`` rules),
    so backends only check what needs the stored state. Errors are evstore's own
    (:mod:`evstore.errors`); driver failures become ``StorageError`` chained from the
    driver's exception, at one translation point per backend.
    """

    enable_hard_deletes: bool = False
    poll_interval: float = 0.5
    """Seconds a follower waits for a :attr:`changes` signal before it reads again."""
    supports_binary: bool = True
    """False when payloads must be JSON (PostgreSQL with ``column_data_type="jsonb"``)."""
    times_appends: bool = False
    """True when ``append`` applies the store's timeout itself. The façade then does not
    cancel it from outside, so a timeout can never strike after the events committed."""

    # -- lifecycle -------------------------------------------------------------------

    @abc.abstractmethod
    async def open(self, *, auto_init: bool = True) -> None:
        """Connect; create the schema when it is missing and ``auto_init`` is true."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish pending writes and release every connection. Idempotent."""

    @abc.abstractmethod
    async def create(self) -> str:
        """Create the database (and schema) if missing; return a message saying which."""

    @abc.abstractmethod
    async def init(self) -> str:
        """Create evstore's tables if missing; return a message saying which."""

    @abc.abstractmethod
    async def migrate(self) -> str:
        """Bring the tables to the current schema version; safe to run concurrently."""

    @abc.abstractmethod
    async def drop(self) -> str:
        """Remove evstore's tables (and a non-default schema); return a message."""

    @abc.abstractmethod
    async def reset(self) -> str:
        """Delete every stream, event, subscription and snapshot; keep the tables."""

    @abc.abstractmethod
    async def schema_version(self) -> str | None:
        """The recorded schema version, or ``None`` when not initialised."""

    # -- writing ---------------------------------------------------------------------

    @abc.abstractmethod
    async def append(
        self,
        stream_id: str,
        expected_version: ExpectedVersion | int,
        events: Sequence[NewEvent],
        created_at: datetime,
        *,
        conn: Any = None,
    ) -> AppendResult:
        """Append ``events`` atomically after checking ``expected_version``.

        An empty ``events`` checks the expectation and writes nothing.
        """

    @abc.abstractmethod
    async def link(
        self,
        stream_id: str,
        expected_version: ExpectedVersion | int,
        event_ids: Sequence[UUID],
        *,
        conn: Any = None,
    ) -> AppendResult:
        """Link existing events into ``stream_id``; all ids must exist or nothing is linked."""

    @abc.abstractmethod
    async def delete_stream(
        self,
        stream_id: str,
        expected_version: ExpectedVersion | int,
        *,
        hard: bool,
        conn: Any = None,
    ) -> None:
        """Soft delete (mark) or hard delete (remove everywhere) a stream."""

    # -- reading ---------------------------------------------------------------------

    @abc.abstractmethod
    async def read_stream(
        self,
        stream_id: str,
        start_version: int,
        count: int,
        *,
        forward: bool,
        conn: Any = None,
    ) -> list[EventRow]:
        """Read a stream's events by event number, honouring its metadata.

        ``start_version`` is inclusive; backward ``-1`` means from the end.

        Raises:
            StreamNotFoundError, StreamDeletedError.
        """

    @abc.abstractmethod
    async def read_all(
        self, start_position: int, count: int, *, forward: bool, conn: Any = None
    ) -> list[EventRow]:
        """Read ``$all`` by global position (inclusive start; backward ``-1`` = the end)."""

    @abc.abstractmethod
    async def stream_info(self, stream_id: str, *, conn: Any = None) -> StreamInfo:
        """Describe a stream (``"$all"`` included).

        Raises:
            StreamNotFoundError, StreamDeletedError.
        """

    @abc.abstractmethod
    async def paginate_streams(
        self,
        *,
        page_size: int,
        page_number: int,
        search: str | None,
        sort_by: SortBy,
        sort_dir: SortDir,
    ) -> Page[StreamInfo]:
        """List streams (``$all`` first by creation), soft-deleted ones included."""

    # -- following the log (subscriptions) ------------------------------------------

    @property
    def changes(self) -> ChangeSignal:
        """Signalled when new events may be readable (local commits, other processes'
        notifications). A hint only: followers always re-read, and also every
        :attr:`poll_interval` seconds."""
        signal: ChangeSignal | None = getattr(self, "_change_signal", None)
        if signal is None:
            signal = ChangeSignal()
            self._change_signal = signal
        return signal

    async def watch_changes(self) -> None:
        """Start listening for other processes' commits (PostgreSQL LISTEN). Idempotent;
        called when the first subscription starts. Backends without a cross-process
        notification channel rely on polling and do nothing."""
        return None

    # -- persistent subscriptions ---------------------------------------------------

    async def subscription_checkpoint(self, stream_id: str, name: str, start_from: int) -> int:
        """Find or create the subscription's row; return its checkpoint (``last_seen``).

        A new row starts at ``start_from``; an existing row keeps its checkpoint.
        """
        raise NotSupportedError(f"{type(self).__name__} does not support subscriptions")

    async def store_checkpoint(self, stream_id: str, name: str, last_seen: int) -> None:
        """Set the subscription's checkpoint (no-op when the row no longer exists)."""
        raise NotSupportedError(f"{type(self).__name__} does not support subscriptions")

    async def delete_subscription(self, stream_id: str, name: str) -> None:
        """Delete the subscription's row and its parked events, if any."""
        raise NotSupportedError(f"{type(self).__name__} does not support subscriptions")

    async def list_subscriptions(self) -> list[SubscriptionRecord]:
        """Every subscription row, ordered by (stream_id, subscription_name)."""
        raise NotSupportedError(f"{type(self).__name__} does not support subscriptions")

    async def park(self, stream_id: str, name: str, entries: Sequence[ParkedEntry]) -> None:
        """Store parked events (replacing an entry with the same event number).

        Works whether or not the subscription has a row (transient subscriptions park too).
        """
        raise NotSupportedError(f"{type(self).__name__} does not support subscriptions")

    async def parked(self, stream_id: str, name: str) -> list[ParkedEntry]:
        """The subscription's parked events, oldest parked first."""
        raise NotSupportedError(f"{type(self).__name__} does not support subscriptions")

    async def request_replay(self, stream_id: str, name: str) -> int:
        """Mark every parked event of the subscription for replay; return how many."""
        raise NotSupportedError(f"{type(self).__name__} does not support subscriptions")

    async def unpark(self, stream_id: str, name: str, event_numbers: Sequence[int]) -> None:
        """Remove parked entries (handled after a replay)."""
        raise NotSupportedError(f"{type(self).__name__} does not support subscriptions")

    async def try_lock_subscription(self, stream_id: str, name: str) -> SubscriptionLock | None:
        """Take ownership of the subscription without waiting; ``None`` when another
        holder (this process or another) has it."""
        raise NotSupportedError(f"{type(self).__name__} does not support subscriptions")

    # -- snapshots -------------------------------------------------------------------

    @abc.abstractmethod
    async def read_snapshot(self, source_id: str) -> StoredSnapshot:
        """Raises: SnapshotNotFoundError."""

    @abc.abstractmethod
    async def record_snapshot(self, snapshot: StoredSnapshot) -> None:
        """Insert or replace the snapshot of ``snapshot.source_id``."""

    @abc.abstractmethod
    async def delete_snapshot(self, source_id: str) -> None:
        """Remove the snapshot if there is one."""


def refuse_conn(conn: Any) -> None:
    """For backends without caller transactions: refuse a ``conn=`` argument.

    Raises:
        NotSupportedError: ``conn`` is not ``None``.
    """
    if conn is not None:
        raise NotSupportedError("conn= is only supported by the PostgreSQL backend")
