"""The values evstore takes and returns: events, stream info, pages, snapshots."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

from evstore._checks import check_text
from evstore._ids import new_uuid4
from evstore.errors import InvalidArgumentError, InvalidArgumentTypeError

__all__ = [
    "ANY_VERSION",
    "NO_STREAM",
    "STREAM_EXISTS",
    "AppendResult",
    "EventData",
    "ExpectedVersion",
    "Page",
    "RecordedEvent",
    "SnapshotData",
    "StreamInfo",
    "StreamStatus",
]

T = TypeVar("T")

MAX_EVENT_TYPE_LENGTH = 1024

ALL_STREAM = "$all"
StreamStatus = Literal["created", "deleted"]


class ExpectedVersion(enum.Enum):
    """The symbolic expectations an append, link or delete can state."""

    ANY_VERSION = "any_version"
    """No check: append whatever the stream's state (except soft deleted)."""
    NO_STREAM = "no_stream"
    """The stream must not exist or must have no events."""
    STREAM_EXISTS = "stream_exists"
    """The stream must exist (it may be empty)."""

    def __repr__(self) -> str:
        return f"evstore.{self.name}"


ANY_VERSION = ExpectedVersion.ANY_VERSION
NO_STREAM = ExpectedVersion.NO_STREAM
STREAM_EXISTS = ExpectedVersion.STREAM_EXISTS


def coerce_uuid(value: object, argument: str) -> UUID:
    """Return ``value`` as a UUID, accepting a UUID or its string form.

    Raises:
        InvalidArgumentTypeError: ``value`` is neither a UUID nor a string.
        InvalidArgumentError: ``value`` is a string that is not a UUID.
    """
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            raise InvalidArgumentError(
                f"{argument} must be a UUID, got {value!r}", argument=argument
            ) from None
    raise InvalidArgumentTypeError(
        f"{argument} must be a UUID or a UUID string, got {type(value).__name__}",
        argument=argument,
    )


@dataclass(frozen=True, slots=True, init=False)
class EventData:
    """An event to append.

    Args:
        event_type: a non-empty name of the kind of event, e.g. ``"OrderPlaced"``.
        data: the payload; it goes through the store's serializer, except ``bytes``,
            which are stored as they are.
        metadata: optional payload with the same rules as ``data``.
        event_id: the event's id (UUID or UUID string); a fresh ``uuid4`` when omitted.
            Ids are unique across the store.
        correlation_id: optional UUID (or UUID string).
        causation_id: optional UUID (or UUID string).

    Raises:
        InvalidArgumentTypeError: ``event_type`` is not a string, or an id has a wrong type.
        InvalidArgumentError: ``event_type`` is empty, longer than 1,024 characters or holds
            NUL or lone surrogates, or an id is a malformed UUID.
    """

    event_type: str
    data: Any
    metadata: Any
    event_id: UUID
    correlation_id: UUID | None
    causation_id: UUID | None

    def __init__(
        self,
        event_type: str,
        data: Any,
        metadata: Any = None,
        *,
        event_id: UUID | str | None = None,
        correlation_id: UUID | str | None = None,
        causation_id: UUID | str | None = None,
    ) -> None:
        # Applications build events by the thousand with a handful of type names: a name
        # checked once is not checked again. (Built often: keep this lean.)
        if event_type.__class__ is not str or event_type not in _checked_event_types:
            _check_event_type(event_type)
        _set(self, "event_type", event_type)
        _set(self, "data", data)
        _set(self, "metadata", metadata)
        _set(
            self,
            "event_id",
            new_uuid4() if event_id is None else coerce_uuid(event_id, "event_id"),
        )
        _set(
            self,
            "correlation_id",
            None if correlation_id is None else coerce_uuid(correlation_id, "correlation_id"),
        )
        _set(
            self,
            "causation_id",
            None if causation_id is None else coerce_uuid(causation_id, "causation_id"),
        )


_set = object.__setattr__
_checked_event_types: set[str] = set()
_MAX_CHECKED_EVENT_TYPES = 10_000


def _check_event_type(event_type: object) -> None:
    checked = check_text(event_type, "event_type", max_length=MAX_EVENT_TYPE_LENGTH)
    if len(_checked_event_types) >= _MAX_CHECKED_EVENT_TYPES:  # bounded, whatever the input
        _checked_event_types.clear()
    _checked_event_types.add(checked)


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored.

    Attributes:
        event_id: the event's id.
        event_number: the event's position in the stream being read: its version for a
            stream, its global position for ``$all``, the link's position for a stream of
            links.
        stream_id: the stream the event was appended to (for a link: the original stream).
        stream_version: 1-based version of the event in ``stream_id``.
        position: the event's global position in ``$all``.
        event_type: the event's type name.
        data: the payload, deserialised (``bytes`` if it was appended as bytes).
        metadata: the metadata, deserialised, or ``None``.
        correlation_id: optional UUID.
        causation_id: optional UUID.
        created_at: when it was appended (timezone-aware, UTC).
    """

    event_id: UUID
    event_number: int
    stream_id: str
    stream_version: int
    position: int
    event_type: str
    data: Any
    metadata: Any
    correlation_id: UUID | None
    causation_id: UUID | None
    created_at: datetime


# RecordedEvent's fields in the same slots, without the frozen __init__. Reads build one
# RecordedEvent per stored event, and a frozen dataclass's __init__ (one object.__setattr__
# call per field) measured ten times slower than a plain slots __init__. recorded_event()
# (and the façade's read loop) builds with this twin and then gives the instance its real
# class: the slot layouts are identical (the twin is derived from RecordedEvent's fields),
# so CPython allows the __class__ assignment, and the result is an ordinary frozen
# RecordedEvent.
RecordedEventBuilder: Any = dataclasses.make_dataclass(
    "RecordedEventBuilder",
    [(f.name, f.type) for f in dataclasses.fields(RecordedEvent)],
    slots=True,
)


def recorded_event(*values: Any) -> RecordedEvent:
    """A ``RecordedEvent`` from its field values in declaration order, built fast."""
    event: Any = RecordedEventBuilder(*values)
    event.__class__ = RecordedEvent
    built: RecordedEvent = event
    return built


@dataclass(frozen=True, slots=True)
class AppendResult:
    """The outcome of an append, link or metadata write.

    Attributes:
        stream_version: the stream's version after the write.
        position: the global position of the last event written; ``None`` when nothing was
            written (an empty append), when the write ran inside a caller's transaction
            (``conn=``), whose positions are only assigned after it commits, or when the
            events committed but their position was not assigned within the store's
            ``timeout`` (PostgreSQL; the events are stored and get one shortly).
    """

    stream_version: int
    position: int | None


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What the store knows about one stream.

    Attributes:
        stream_id: the stream's id (``"$all"`` for the global stream).
        stream_version: the number of events appended or linked to the stream (for
            ``$all``: the highest global position ever assigned).
        created_at: when the stream was created (UTC).
        deleted_at: when it was soft deleted, else ``None``.
        status: ``"created"`` or ``"deleted"``.
    """

    stream_id: str
    stream_version: int
    created_at: datetime
    deleted_at: datetime | None = None
    status: StreamStatus = "created"


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a paginated listing."""

    entries: list[T]
    page_number: int
    page_size: int
    total_entries: int
    total_pages: int


@dataclass(frozen=True, slots=True)
class SnapshotData:
    """A snapshot of an aggregate or other source.

    Attributes:
        source_id: the id of what was snapshotted.
        source_version: its version when the snapshot was taken (non-negative).
        source_type: a type name; with a registered type, ``data`` is read back as it.
        data: the snapshot's payload.
        metadata: optional metadata.
        created_at: when the first snapshot of this source was recorded (set on read).
    """

    source_id: str
    source_version: int
    source_type: str
    data: Any
    metadata: Any = None
    created_at: datetime | None = field(default=None)
