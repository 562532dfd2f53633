"""KurrentDB's semantics over evstore's storage: the gRPC server's "dialect".

The library and the server share one database but speak different dialects (see
``docs/design.md``, "Two semantic dialects, one storage"). This module is the mapping:

* revisions are 0-based: revision = evstore version - 1, and ``$all`` positions are evstore's
  global positions (commit = prepare);
* expected revisions ``any`` / ``no_stream`` / ``stream_exists`` / exact, checked against
  KurrentDB's notion of the stream's state, then enforced by an exact evstore expectation so
  a concurrent writer makes the append retry instead of slipping in between;
* soft delete (``Streams.Delete``) replaces the stream's metadata with
  ``{"$tb": Int64.MaxValue}``; reads then answer "stream not found", and a later append
  undeletes by writing ``$tb`` = the first new revision;
* tombstones (``Streams.Tombstone``) append a ``$streamDeleted`` event (so ``$all`` shows
  it) and then soft-delete the stream in evstore's own sense, which refuses every later read
  and append with ``StreamDeletedError``: the name is burned;
* re-appending the same event ids is an idempotent success when they already sit in the
  stream, in order, where the expectation puts them (evstore refuses a stored id with
  ``DuplicateEventError``; the dialect then looks for them).

Stream metadata is shared with the library: ``$metadata`` events (JSON) in ``$$<stream>``,
exactly where :meth:`AsyncEventStore.set_stream_metadata` writes them.

The server reads and writes through the store's backend rows (``store._backend``) rather than
``RecordedEvent`` objects: the bytes a client sent are what a client reads back, and no
payload is decoded and re-encoded on the way to the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import orjson

from evstore._store import AsyncEventStore
from evstore._types import ALL_STREAM, ANY_VERSION, NO_STREAM, ExpectedVersion
from evstore._validation import check_stream_id
from evstore.backends.base import DATA_RAW, EventRow, NewEvent, StorageBackend
from evstore.backends.rules import metadata_stream_of
from evstore.errors import (
    ConcurrencyError,
    DuplicateEventError,
    InvalidArgumentError,
    StreamDeletedError,
    StreamNotFoundError,
)

__all__ = [
    "INT64_MAX",
    "METADATA_STREAM_PREFIX",
    "TOMBSTONE_EVENT_TYPE",
    "BadRequest",
    "Dialect",
    "DialectError",
    "Expected",
    "ExpectedKind",
    "StreamDeleted",
    "StreamNotFound",
    "StreamState",
    "WriteResult",
    "WrongExpectedVersion",
    "base_stream_of",
]

T = TypeVar("T")

INT64_MAX = 2**63 - 1
"""KurrentDB's ``$tb`` of a soft-deleted stream (and a tombstone's revision)."""
TOMBSTONE_EVENT_TYPE = "$streamDeleted"
METADATA_STREAM_PREFIX = "$$"

# How far back an idempotency check with `any` / `stream_exists` looks for the first re-sent
# event id. KurrentDB answers those from a bounded cache of recent writes; a bounded scan of
# the stream's tail is the same promise ("recent re-sends are idempotent").
IDEMPOTENCY_SCAN_LIMIT = 10_000
_SCAN_PAGE = 500
# Appends retry when another writer changed the stream between the state read and the write.
_WRITE_ATTEMPTS = 20


class ExpectedKind(enum.Enum):
    """The four expectations a KurrentDB write can state."""

    ANY = "any"
    NO_STREAM = "no_stream"
    STREAM_EXISTS = "stream_exists"
    REVISION = "revision"


@dataclass(frozen=True, slots=True)
class Expected:
    """An expected revision: a kind, and the revision for ``REVISION``."""

    kind: ExpectedKind
    revision: int = 0

    @classmethod
    def any(cls) -> Expected:
        """No check."""
        return cls(ExpectedKind.ANY)

    @classmethod
    def no_stream(cls) -> Expected:
        """The stream must have no events (a soft-deleted stream qualifies)."""
        return cls(ExpectedKind.NO_STREAM)

    @classmethod
    def stream_exists(cls) -> Expected:
        """The stream must have events or metadata (and not be deleted)."""
        return cls(ExpectedKind.STREAM_EXISTS)

    @classmethod
    def exact(cls, revision: int) -> Expected:
        """The stream's last revision must be ``revision``."""
        return cls(ExpectedKind.REVISION, revision)

    @property
    def code(self) -> int:
        """KurrentDB's internal number: -2 any, -1 no stream, -4 stream exists, else the
        revision (as error messages and trailers show it)."""
        if self.kind is ExpectedKind.ANY:
            return -2
        if self.kind is ExpectedKind.NO_STREAM:
            return -1
        if self.kind is ExpectedKind.STREAM_EXISTS:
            return -4
        return self.revision


class DialectError(Exception):
    """An outcome of a KurrentDB operation that is not a success."""


class WrongExpectedVersion(DialectError):
    """The expectation does not hold.

    Attributes:
        stream: the stream written to.
        expected: what the request expected.
        current: the stream's last revision, or ``None`` when it has no events.
    """

    def __init__(self, stream: str, expected: Expected, current: int | None) -> None:
        super().__init__(
            f"WrongExpectedVersion. Stream: {stream}, Expected version: {expected.code}, "
            f"Actual version: {-1 if current is None else current}"
        )
        self.stream = stream
        self.expected = expected
        self.current = current

    @property
    def actual_code(self) -> int:
        """The current revision as KurrentDB prints it (-1: no stream)."""
        return -1 if self.current is None else self.current


class StreamDeleted(DialectError):
    """The stream is tombstoned (or soft deleted and the request expected it to exist)."""

    def __init__(self, stream: str) -> None:
        super().__init__(f"Event stream '{stream}' is deleted.")
        self.stream = stream


class StreamNotFound(DialectError):
    """A read of a stream without events, or soft deleted."""

    def __init__(self, stream: str) -> None:
        super().__init__(f"Event stream '{stream}' is not found.")
        self.stream = stream


class BadRequest(DialectError):
    """The request cannot be carried out as given (INVALID_ARGUMENT on the wire)."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """A successful write.

    Attributes:
        revision: the stream's last revision after the write (for an append: the last
            event's), or ``None`` when the stream still has no events (an empty append).
        position: the ``$all`` position of the last event written (or found, for an
            idempotent re-append), or ``None`` when nothing was written.
    """

    revision: int | None
    position: int | None


@dataclass(frozen=True, slots=True)
class StreamState:
    """What the KurrentDB rules need to know about a stream.

    Attributes:
        version: evstore's version (number of events and links; 0 when it has none).
        tombstoned: evstore refuses reads and appends (a tombstone, or the library's own
            soft delete).
        has_metadata: ``$$<stream>`` holds at least one event.
        metadata: the latest metadata document (``{}`` when absent or not an object).
    """

    version: int
    tombstoned: bool
    has_metadata: bool
    metadata: dict[str, Any]

    @property
    def exists(self) -> bool:
        """The stream has events."""
        return self.version > 0

    @property
    def last_revision(self) -> int | None:
        """The 0-based revision of the last event, or ``None`` without events."""
        return self.version - 1 if self.version > 0 else None

    @property
    def soft_deleted(self) -> bool:
        """Soft deleted the KurrentDB way: ``$tb`` at (or beyond) Int64.MaxValue."""
        return truncate_before(self.metadata) >= INT64_MAX


def truncate_before(metadata: dict[str, Any]) -> int:
    """The ``$tb`` of a metadata document, 0 when absent or malformed."""
    value = metadata.get("$tb")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def _undeleted(metadata: dict[str, Any], truncate_before: int) -> dict[str, Any]:
    """The metadata that undeletes a stream: ``$tb`` at its first new revision, the other
    keys kept, except reserved values the library would refuse (the events are already
    appended: the metadata write must not fail on what an older write left)."""
    kept = dict(metadata)
    for key in ("$maxAge", "$maxCount"):
        value = kept.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT64_MAX
        ):
            del kept[key]
    kept["$tb"] = truncate_before
    return kept


def base_stream_of(stream: str) -> str:
    """The stream a metadata stream describes (``$$s`` -> ``s``), else the stream itself."""
    if stream.startswith(METADATA_STREAM_PREFIX) and len(stream) > len(METADATA_STREAM_PREFIX):
        return stream[len(METADATA_STREAM_PREFIX) :]
    return stream


def _is_metadata_stream(stream: str) -> bool:
    return stream.startswith(METADATA_STREAM_PREFIX) and len(stream) > len(METADATA_STREAM_PREFIX)


def _parse_metadata(data: Any) -> dict[str, Any]:
    if data is None:
        return {}
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


class _ReadWriteLock:
    """Many shared holders or one exclusive holder, granted in arrival order."""

    __slots__ = ("_exclusive", "_shared", "_users", "_waiters")

    def __init__(self) -> None:
        self._shared = 0
        self._exclusive = False
        self._waiters: deque[tuple[bool, asyncio.Future[None]]] = deque()
        self._users = 0

    def _grantable(self, exclusive: bool) -> bool:
        return not self._exclusive and (not exclusive or not self._shared)

    def _grant(self, exclusive: bool) -> None:
        if exclusive:
            self._exclusive = True
        else:
            self._shared += 1

    async def acquire(self, exclusive: bool) -> None:
        if not self._waiters and self._grantable(exclusive):
            self._grant(exclusive)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (exclusive, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(exclusive)  # granted just as the caller was cancelled
            else:
                self._waiters.remove(entry)
                self._wake()
            raise

    def release(self, exclusive: bool) -> None:
        if exclusive:
            self._exclusive = False
        else:
            self._shared -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            exclusive, waiter = self._waiters[0]
            if waiter.done():
                self._waiters.popleft()
                continue
            if not self._grantable(exclusive):
                return
            self._waiters.popleft()
            self._grant(exclusive)
            waiter.set_result(None)
            if exclusive:
                return


class _StreamLocks:
    """Per-stream ordering of this server's writes.

    Appends hold a stream's lock shared (so they still batch in the backend's group commit);
    deletes, tombstones and an append that undeletes hold it exclusively. Without it an
    append that read "not deleted" could commit after a concurrent soft delete and vanish
    behind its ``$tb``, or two undeleting appends could each hide the other's events.
    Metadata-stream writes lock the stream they describe. Entries live while in use only.
    """

    def __init__(self) -> None:
        self._locks: dict[str, _ReadWriteLock] = {}

    @asynccontextmanager
    async def hold(self, key: str, *, exclusive: bool) -> AsyncIterator[None]:
        """Hold ``key``'s lock (shared or exclusive) for the ``async with`` body."""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = _ReadWriteLock()
        lock._users += 1
        try:
            await lock.acquire(exclusive)
            try:
                yield
            finally:
                lock.release(exclusive)
        finally:
            lock._users -= 1
            if not lock._users:
                del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)


class Dialect:
    """KurrentDB operations on one :class:`AsyncEventStore` (opened by the caller).

    Args:
        store: the server's store.
        page_size: events per backend read when the dialect pages through a stream.
    """

    def __init__(self, store: AsyncEventStore, *, page_size: int = 500) -> None:
        self.store = store
        self.page_size = page_size
        self._locks = _StreamLocks()

    @property
    def backend(self) -> StorageBackend:
        """The store's backend (reads return rows, appends take serialised events)."""
        return self.store._backend

    async def _run(self, operation: Awaitable[T], *, timed: bool = True) -> T:
        # The façade's timeout wrapper, so server calls fail like library calls do.
        return await self.store._run(operation, timed=timed)

    # -- names -----------------------------------------------------------------------

    @staticmethod
    def check_stream(stream: str) -> str:
        """A stream name the store accepts.

        Raises:
            BadRequest: empty, too long, NUL or lone surrogates.
        """
        try:
            return check_stream_id(stream, "stream_identifier")
        except InvalidArgumentError as exc:
            raise BadRequest(str(exc)) from exc

    def check_writable(self, stream: str) -> str:
        """A stream name that may be written (never ``$all``).

        Raises:
            BadRequest: as :meth:`check_stream`, or ``$all``.
        """
        stream = self.check_stream(stream)
        if stream == ALL_STREAM:
            raise BadRequest("$all cannot be written to or deleted")
        return stream

    # -- state -----------------------------------------------------------------------

    async def version_of(self, stream: str) -> tuple[int, bool]:
        """(evstore version, tombstoned) of a stream; (0, False) when it does not exist."""
        try:
            info = await self._run(self.backend.stream_info(stream))
        except StreamNotFoundError:
            return 0, False
        except StreamDeletedError:
            return 0, True
        return info.stream_version, False

    async def metadata_of(self, stream: str) -> tuple[bool, dict[str, Any]]:
        """(has metadata, latest metadata document) of a stream (never of a metadata
        stream: those have none)."""
        if _is_metadata_stream(stream):
            return False, {}
        try:
            rows = await self._run(
                self.backend.read_stream(metadata_stream_of(stream), -1, 1, forward=False)
            )
        except (StreamNotFoundError, StreamDeletedError):
            return False, {}
        if not rows:
            return False, {}
        return True, _parse_metadata(rows[0][6])

    async def state(self, stream: str) -> StreamState:
        """The stream's state for the expectation rules (two reads, run concurrently)."""
        (version, tombstoned), (has_metadata, metadata) = await asyncio.gather(
            self.version_of(stream), self.metadata_of(stream)
        )
        return StreamState(version, tombstoned, has_metadata, metadata)

    # -- appends ---------------------------------------------------------------------

    async def append(
        self, stream: str, expected: Expected, events: Sequence[NewEvent]
    ) -> WriteResult:
        """Append ``events`` atomically if ``expected`` holds, KurrentDB's way.

        Returns:
            The last event's revision and position (the original ones for an idempotent
            re-append); for an empty append, the current revision and no position.

        Raises:
            WrongExpectedVersion, StreamDeleted, BadRequest.
        """
        stream = self.check_writable(stream)
        if events and expected.kind is not ExpectedKind.STREAM_EXISTS:
            done = await self._append_directly(stream, expected, events)
            if done is not None:
                return done
        return await self._append_judged(stream, expected, events)

    async def _append_directly(
        self, stream: str, expected: Expected, events: Sequence[NewEvent]
    ) -> WriteResult | None:
        """The common case in one read and one write: when the stream is not soft deleted,
        ``any``, ``no_stream`` and an exact revision mean what evstore's ANY_VERSION,
        NO_STREAM and version = revision + 1 mean, so evstore checks them atomically.

        ``None`` when that is not enough (soft deleted, a conflict, a re-sent id...): the
        caller then judges the stream's full state.
        """
        target: ExpectedVersion | int
        if expected.kind is ExpectedKind.ANY:
            target = ANY_VERSION
        elif expected.kind is ExpectedKind.NO_STREAM:
            target = NO_STREAM
        elif expected.revision < INT64_MAX:
            target = expected.revision + 1
        else:
            return None
        async with self._locks.hold(base_stream_of(stream), exclusive=False):
            _, metadata = await self.metadata_of(stream)
            if truncate_before(metadata) >= INT64_MAX:
                return None
            try:
                result = await self._run(
                    self.backend.append(stream, target, events, datetime.now(UTC)),
                    timed=not self.backend.times_appends,
                )
            except (
                ConcurrencyError,
                StreamNotFoundError,
                StreamDeletedError,
                DuplicateEventError,
            ):
                return None
            except InvalidArgumentError as exc:
                raise BadRequest(str(exc)) from exc
        return WriteResult(result.stream_version - 1, result.position)

    async def _append_judged(
        self, stream: str, expected: Expected, events: Sequence[NewEvent]
    ) -> WriteResult:
        """Append after reading the stream's state and applying KurrentDB's rules to it
        (undelete, idempotency, exact error details)."""
        key = base_stream_of(stream)
        exclusive = False
        for _ in range(_WRITE_ATTEMPTS):
            async with self._locks.hold(key, exclusive=exclusive):
                state = await self.state(stream)
                undelete = self._check_append(stream, expected, state)
                if undelete and events and not exclusive:
                    exclusive = True  # read the state again under the exclusive lock
                    continue
                found = await self._idempotent_before(stream, expected, state, events)
                if found is not None:
                    return found
                if not events:
                    return WriteResult(state.last_revision, None)
                try:
                    result = await self._run(
                        self.backend.append(
                            stream,
                            state.version if state.exists else NO_STREAM,
                            events,
                            datetime.now(UTC),
                        ),
                        timed=not self.backend.times_appends,
                    )
                except ConcurrencyError:
                    continue  # another writer moved the stream: judge the new state
                except StreamNotFoundError:
                    continue
                except StreamDeletedError:
                    raise StreamDeleted(stream) from None
                except DuplicateEventError:
                    return await self._idempotent_after(stream, expected, state, events)
                except InvalidArgumentError as exc:
                    raise BadRequest(str(exc)) from exc
                if undelete:
                    await self._write_metadata(stream, _undeleted(state.metadata, state.version))
                return WriteResult(result.stream_version - 1, result.position)
        raise WrongExpectedVersion(stream, expected, (await self.state(stream)).last_revision)

    def _check_append(self, stream: str, expected: Expected, state: StreamState) -> bool:
        """Apply the expectation rules; True when the append must undelete the stream.

        Cases the idempotency check may still turn into a success (an exact revision below
        the current one, ``no_stream`` on a stream with events) pass here.
        """
        kind = expected.kind
        if state.tombstoned:
            raise StreamDeleted(stream)
        last = state.last_revision
        if state.soft_deleted:
            if kind is ExpectedKind.STREAM_EXISTS:
                raise StreamDeleted(stream)
            if kind is ExpectedKind.REVISION and expected.revision != last:
                raise WrongExpectedVersion(stream, expected, last)
            return True
        if kind is ExpectedKind.STREAM_EXISTS:
            if not state.exists and not state.has_metadata:
                raise WrongExpectedVersion(stream, expected, None)
        elif kind is ExpectedKind.REVISION and (last is None or expected.revision > last):
            raise WrongExpectedVersion(stream, expected, last)
        return False

    async def _idempotent_before(
        self, stream: str, expected: Expected, state: StreamState, events: Sequence[NewEvent]
    ) -> WriteResult | None:
        """For expectations that point before the stream's end (an exact revision below
        the last, ``no_stream`` on a stream with events): the events must already sit
        right after that point, else WrongExpectedVersion. ``None``: not such a case."""
        last = state.last_revision
        if last is None or state.soft_deleted:
            return None
        if expected.kind is ExpectedKind.REVISION and expected.revision < last:
            first_version = expected.revision + 2
        elif expected.kind is ExpectedKind.NO_STREAM:
            first_version = 1
        else:
            return None
        found = await self._find_at(stream, first_version, events) if events else None
        if found is None:
            raise WrongExpectedVersion(stream, expected, last)
        return found

    async def _idempotent_after(
        self, stream: str, expected: Expected, state: StreamState, events: Sequence[NewEvent]
    ) -> WriteResult:
        """evstore refused a stored event id: succeed if the whole request is already in
        this stream, in order, where ``expected`` puts it; else WrongExpectedVersion."""
        found: WriteResult | None = None
        if expected.kind in (ExpectedKind.ANY, ExpectedKind.STREAM_EXISTS):
            first = await self._find_version(stream, events[0].event_id)
            if first is not None:
                found = await self._find_at(stream, first, events)
        if found is None:
            current = (await self.version_of(stream))[0]
            raise WrongExpectedVersion(stream, expected, current - 1 if current else None)
        return found

    async def _read_rows(
        self, stream: str, start_version: int, count: int, *, forward: bool
    ) -> list[EventRow]:
        try:
            return await self._run(
                self.backend.read_stream(stream, start_version, count, forward=forward)
            )
        except (StreamNotFoundError, StreamDeletedError):
            return []

    async def _find_at(
        self, stream: str, first_version: int, events: Sequence[NewEvent]
    ) -> WriteResult | None:
        """The original result if ``events`` are the stream's events from ``first_version``
        on, in order (own events, not links)."""
        rows = await self._read_rows(stream, first_version, len(events), forward=True)
        if len(rows) != len(events):
            return None
        for number, (row, event) in enumerate(zip(rows, events, strict=True), first_version):
            if row[0] != number or row[1] != event.event_id or row[2] != stream:
                return None
        last = rows[-1]
        return WriteResult(last[0] - 1, last[4])

    async def _find_version(self, stream: str, event_id: UUID) -> int | None:
        """The version of ``event_id`` among the stream's last events, if there."""
        scanned = 0
        start = -1
        while scanned < IDEMPOTENCY_SCAN_LIMIT:
            rows = await self._read_rows(stream, start, _SCAN_PAGE, forward=False)
            for row in rows:
                if row[1] == event_id and row[2] == stream:
                    number: int = row[0]
                    return number
            scanned += len(rows)
            if len(rows) < _SCAN_PAGE:
                return None
            start = rows[-1][0] - 1
            if start < 1:
                return None
        return None

    async def _write_metadata(self, stream: str, metadata: dict[str, Any]) -> int | None:
        """Replace ``stream``'s metadata the way the library does; the event's position."""
        try:
            result = await self.store.set_stream_metadata(stream, metadata, ANY_VERSION)
        except InvalidArgumentError as exc:
            raise BadRequest(str(exc)) from exc
        return result.position

    # -- deletes ---------------------------------------------------------------------

    def _check_delete(self, stream: str, expected: Expected, state: StreamState) -> None:
        """The expectation rules of Delete and Tombstone (§5.2, §5.3 of the reference)."""
        kind = expected.kind
        if state.tombstoned:
            raise StreamDeleted(stream)
        last = state.last_revision
        if state.soft_deleted:
            if kind is ExpectedKind.STREAM_EXISTS:
                raise StreamDeleted(stream)
            if kind is ExpectedKind.REVISION and expected.revision != last:
                raise WrongExpectedVersion(stream, expected, last)
            return
        if kind is ExpectedKind.ANY:
            return
        if kind is ExpectedKind.NO_STREAM:
            if state.exists:
                raise WrongExpectedVersion(stream, expected, last)
            return
        if kind is ExpectedKind.STREAM_EXISTS:
            if not state.exists and not state.has_metadata:
                raise WrongExpectedVersion(stream, expected, None)
            return
        if expected.revision != last:
            raise WrongExpectedVersion(stream, expected, last)

    async def delete(self, stream: str, expected: Expected) -> WriteResult:
        """Soft delete: check ``expected``, then replace the metadata with
        ``{"$tb": Int64.MaxValue}``.

        A stream that never existed (no events, no metadata) answers WrongExpectedVersion
        with current ``None`` (KurrentDB's "Actual version: -1"), whatever was expected.

        Returns:
            The stream's last revision and the metadata event's position.

        Raises:
            WrongExpectedVersion, StreamDeleted, BadRequest.
        """
        stream = self.check_writable(stream)
        async with self._locks.hold(base_stream_of(stream), exclusive=True):
            state = await self.state(stream)
            if not state.tombstoned and not state.exists and not state.has_metadata:
                raise WrongExpectedVersion(stream, expected, None)
            self._check_delete(stream, expected, state)
            position = await self._write_metadata(stream, {"$tb": INT64_MAX})
            return WriteResult(state.last_revision, position)

    async def tombstone(self, stream: str, expected: Expected) -> WriteResult:
        """Hard delete: check ``expected``, append a ``$streamDeleted`` event, then mark the
        stream deleted in evstore (every later read and append is refused).

        A stream that never existed is tombstoned too (its name is burned), unless the
        expectation requires it to exist.

        Returns:
            The tombstone's revision and position.

        Raises:
            WrongExpectedVersion, StreamDeleted, BadRequest.
        """
        stream = self.check_writable(stream)
        async with self._locks.hold(base_stream_of(stream), exclusive=True):
            for _ in range(_WRITE_ATTEMPTS):
                state = await self.state(stream)
                self._check_delete(stream, expected, state)
                raw = self.backend.supports_binary
                marker = NewEvent(
                    uuid.uuid4(),
                    TOMBSTONE_EVENT_TYPE,
                    b"" if raw else b"{}",
                    None,
                    DATA_RAW if raw else 0,
                    None,
                    None,
                )
                try:
                    result = await self._run(
                        self.backend.append(
                            stream,
                            state.version if state.exists else NO_STREAM,
                            [marker],
                            datetime.now(UTC),
                        ),
                        timed=not self.backend.times_appends,
                    )
                except (ConcurrencyError, StreamNotFoundError):
                    continue
                except StreamDeletedError:
                    raise StreamDeleted(stream) from None
                # Deleted meanwhile by another process: the outcome is the same.
                with contextlib.suppress(StreamDeletedError):
                    await self.store.delete_stream(stream, ANY_VERSION)
                return WriteResult(result.stream_version - 1, result.position)
        raise WrongExpectedVersion(stream, expected, (await self.state(stream)).last_revision)

    # -- reads -----------------------------------------------------------------------

    async def check_readable(self, stream: str) -> None:
        """Raise unless ``stream`` can be read the KurrentDB way.

        Raises:
            StreamDeleted: the stream (for ``$$s``: ``s``) is tombstoned.
            StreamNotFound: the stream is soft deleted.
        """
        if _is_metadata_stream(stream):
            if (await self.version_of(base_stream_of(stream)))[1]:
                raise StreamDeleted(stream)
            return
        _, metadata = await self.metadata_of(stream)
        if truncate_before(metadata) >= INT64_MAX:
            if (await self.version_of(stream))[1]:
                raise StreamDeleted(stream)
            raise StreamNotFound(stream)

    async def stream_page(
        self, stream: str, start_version: int, count: int, *, forward: bool
    ) -> list[EventRow]:
        """One page of a stream's rows by evstore event number (inclusive start; backward
        ``-1`` = from the end), hiding a soft-deleted stream.

        Raises:
            StreamNotFound: the stream has no events, or is soft deleted.
            StreamDeleted: it is tombstoned.
        """
        await self.check_readable(stream)
        try:
            rows: list[EventRow] = await self._run(
                self.backend.read_stream(stream, start_version, count, forward=forward)
            )
        except StreamNotFoundError:
            raise StreamNotFound(stream) from None
        except StreamDeletedError:
            raise StreamDeleted(stream) from None
        return rows

    async def read_stream(
        self, stream: str, start_version: int, count: int, *, forward: bool
    ) -> AsyncIterator[EventRow]:
        """Up to ``count`` rows of a stream from ``start_version`` (an evstore version,
        inclusive both ways; backward ``-1`` = the end), read a page at a time.

        The first page is read before the iterator is returned, so a missing or deleted
        stream raises here rather than during the iteration.

        Raises:
            StreamNotFound, StreamDeleted, BadRequest.
        """
        stream = self.check_stream(stream)
        if stream == ALL_STREAM:
            raise BadRequest("read $all through the all option")
        size = max(1, min(self.page_size, count))
        first = await self.stream_page(stream, start_version, size, forward=forward)

        async def rows() -> AsyncIterator[EventRow]:
            page, remaining = first, count
            while True:
                for row in page[:remaining]:
                    yield row
                remaining -= min(len(page), remaining)
                if remaining <= 0 or len(page) < size:
                    return
                following = page[-1][0] + (1 if forward else -1)
                if following < 1:
                    return
                try:
                    page = await self.stream_page(
                        stream, following, min(size, remaining), forward=forward
                    )
                except (StreamNotFound, StreamDeleted):
                    return  # deleted while being read: the events sent stay valid

        return rows()

    async def last_position(self) -> int:
        """The ``$all`` position of the last readable event (0 when the log is empty)."""
        rows = await self._run(self.backend.read_all(-1, 1, forward=False))
        return int(rows[0][4]) if rows else 0

    async def all_page(self, start: int, count: int, *, forward: bool) -> list[EventRow]:
        """One page of ``$all`` rows (inclusive ``start``; backward ``-1`` = the end)."""
        rows: list[EventRow] = await self._run(self.backend.read_all(start, count, forward=forward))
        return rows
