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
from typing import Any, Literal
from uuid import UUID

from evstore._types import AppendResult, ExpectedVersion, Page, StreamInfo
from evstore.errors import NotSupportedError

__all__ = [
    "DATA_RAW",
    "METADATA_RAW",
    "EventRow",
    "NewEvent",
    "SortBy",
    "SortDir",
    "StorageBackend",
    "StoredSnapshot",
    "refuse_conn",
]

DATA_RAW = 1
"""Flag bit: the event's data was given as ``bytes`` and is returned as ``bytes``."""
METADATA_RAW = 2
"""Flag bit: the event's metadata was given as ``bytes`` and is returned as ``bytes``."""

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


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event ready to store: payloads already serialised."""

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


class StorageBackend(abc.ABC):
    """One database holding one event store.

    All methods are coroutines. Arguments arrive validated (types, ranges, ``"$all"`` rules),
    so backends only check what needs the stored state. Errors are evstore's own
    (:mod:`evstore.errors`); driver failures become ``StorageError`` chained from the
    driver's exception, at one translation point per backend.
    """

    enable_hard_deletes: bool = False
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
