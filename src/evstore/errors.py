"""The exception tree of evstore.

Every error evstore raises on purpose derives from :class:`EventStoreError`::

    EventStoreError
    ├── ConcurrencyError                  an append/delete lost against the stream's state
    │   ├── WrongExpectedVersionError     integer expectation did not match
    │   └── StreamExistsError             NO_STREAM, but the stream has events
    ├── StreamNotFoundError               the stream does not exist (reads, STREAM_EXISTS)
    ├── StreamDeletedError                the stream was soft deleted
    ├── CannotAppendToAllStreamError      "$all" is never written to (also a ValueError)
    ├── CannotDeleteAllStreamError        "$all" is never deleted (also a ValueError)
    ├── DuplicateEventError               an event id is already stored
    ├── EventNotFoundError                a link names an event that does not exist
    ├── NotSupportedError                 hard delete while disabled, etc.
    ├── SubscriptionError
    │   ├── SubscriptionAlreadyExistsError
    │   ├── TooManySubscribersError
    │   └── AlreadySubscribedError
    ├── SnapshotNotFoundError
    ├── ConfigurationError                bad URL, option or schema name (also a ValueError)
    ├── InvalidArgumentError              bad input to an API call (also a ValueError)
    │   └── InvalidArgumentTypeError      wrong type of an argument (also a TypeError)
    ├── StorageError                      a driver failure, chained from the driver's exception
    └── EventStoreTimeoutError            an operation did not finish in time (also a TimeoutError)

Errors carry the fields that explain them (``stream_id``, ``expected_version``,
``actual_version``, ``event_id``, ``argument``) as attributes, not only as text.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

__all__ = [
    "AlreadySubscribedError",
    "CannotAppendToAllStreamError",
    "CannotDeleteAllStreamError",
    "ConcurrencyError",
    "ConfigurationError",
    "DuplicateEventError",
    "EventNotFoundError",
    "EventStoreError",
    "EventStoreTimeoutError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "NotSupportedError",
    "SnapshotNotFoundError",
    "StorageError",
    "StreamDeletedError",
    "StreamExistsError",
    "StreamNotFoundError",
    "SubscriptionAlreadyExistsError",
    "SubscriptionError",
    "TooManySubscribersError",
    "WrongExpectedVersionError",
]


class EventStoreError(Exception):
    """Base class of every error evstore raises on purpose."""


class ConcurrencyError(EventStoreError):
    """The stream was not in the state the caller expected.

    Attributes:
        stream_id: the stream written to.
        expected_version: what the caller expected (a constant or an int).
        actual_version: the stream's version when the check ran (0 when it does not exist),
            or ``None`` when the conflict was detected without reading it.
    """

    def __init__(
        self,
        message: str,
        *,
        stream_id: str,
        expected_version: Any = None,
        actual_version: int | None = None,
    ) -> None:
        super().__init__(message)
        self.stream_id = stream_id
        self.expected_version = expected_version
        self.actual_version = actual_version


class WrongExpectedVersionError(ConcurrencyError):
    """The stream's version differs from the integer the caller expected."""


class StreamExistsError(ConcurrencyError):
    """``NO_STREAM`` was expected but the stream already has events."""


class StreamNotFoundError(EventStoreError):
    """The stream does not exist (never created, or hard deleted).

    Raised by reads of a missing stream, and by writes that expected ``STREAM_EXISTS``
    (then ``expected_version`` is set).
    """

    def __init__(self, message: str, *, stream_id: str, expected_version: Any = None) -> None:
        super().__init__(message)
        self.stream_id = stream_id
        self.expected_version = expected_version


class StreamDeletedError(EventStoreError):
    """The stream was soft deleted: it can no longer be read or appended to."""

    def __init__(self, message: str, *, stream_id: str) -> None:
        super().__init__(message)
        self.stream_id = stream_id


class InvalidArgumentError(EventStoreError, ValueError):
    """An argument has a value the API does not accept.

    Attributes:
        argument: the name of the offending argument.
    """

    def __init__(self, message: str, *, argument: str) -> None:
        super().__init__(message)
        self.argument = argument


class InvalidArgumentTypeError(InvalidArgumentError, TypeError):
    """An argument has a type the API does not accept."""


class CannotAppendToAllStreamError(EventStoreError, ValueError):
    """``"$all"`` is the global log: it is never appended or linked to."""

    def __init__(self, message: str = "cannot append or link to the $all stream") -> None:
        super().__init__(message)
        self.stream_id = "$all"
        self.argument = "stream_id"


class CannotDeleteAllStreamError(EventStoreError, ValueError):
    """``"$all"`` is the global log: it is never deleted."""

    def __init__(self, message: str = "cannot delete the $all stream") -> None:
        super().__init__(message)
        self.stream_id = "$all"
        self.argument = "stream_id"


class DuplicateEventError(EventStoreError):
    """An event id is already stored (in any stream), or is repeated within one append.

    For links: the event is already in the target stream.
    """

    def __init__(self, message: str, *, stream_id: str, event_id: UUID | None = None) -> None:
        super().__init__(message)
        self.stream_id = stream_id
        self.event_id = event_id


class EventNotFoundError(EventStoreError):
    """A link names event ids that are not stored. Nothing is linked."""

    def __init__(self, message: str, *, stream_id: str, event_ids: list[UUID]) -> None:
        super().__init__(message)
        self.stream_id = stream_id
        self.event_ids = event_ids


class NotSupportedError(EventStoreError):
    """The operation is disabled by configuration (hard deletes) or not implemented."""


class SubscriptionError(EventStoreError):
    """Base class of subscription registration errors."""

    def __init__(self, message: str, *, stream_id: str, subscription_name: str) -> None:
        super().__init__(message)
        self.stream_id = stream_id
        self.subscription_name = subscription_name


class SubscriptionAlreadyExistsError(SubscriptionError):
    """A subscription of that name is already active and allows a single subscriber."""


class TooManySubscribersError(SubscriptionError):
    """The subscription already has ``concurrency_limit`` subscribers."""


class AlreadySubscribedError(SubscriptionError):
    """This subscriber is already subscribed to that subscription."""


class SnapshotNotFoundError(EventStoreError):
    """No snapshot is recorded for the source id."""

    def __init__(self, message: str, *, source_id: str) -> None:
        super().__init__(message)
        self.source_id = source_id


class ConfigurationError(EventStoreError, ValueError):
    """A URL, an option or a schema name is invalid."""


class StorageError(EventStoreError):
    """The database driver failed. The driver's exception is chained as ``__cause__``."""


class EventStoreTimeoutError(EventStoreError, TimeoutError):
    """An operation did not finish within the store's ``timeout``."""
