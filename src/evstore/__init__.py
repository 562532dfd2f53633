"""evstore: an event store for Python.

Append events to streams with optimistic concurrency, read streams and the global ``$all``
log, on ``memory://``, SQLite or PostgreSQL, from asyncio (:class:`AsyncEventStore`) or
blocking code (:class:`EventStore`).
"""

import logging

from evstore._store import AsyncEventStore
from evstore._sync import EventStore
from evstore._types import (
    ANY_VERSION,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    EventData,
    ExpectedVersion,
    Page,
    RecordedEvent,
    SnapshotData,
    StreamInfo,
)
from evstore.errors import (
    AlreadySubscribedError,
    CannotAppendToAllStreamError,
    CannotDeleteAllStreamError,
    ConcurrencyError,
    ConfigurationError,
    DuplicateEventError,
    EventNotFoundError,
    EventStoreError,
    EventStoreTimeoutError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    NotSupportedError,
    SnapshotNotFoundError,
    StorageError,
    StreamDeletedError,
    StreamExistsError,
    StreamNotFoundError,
    SubscriptionAlreadyExistsError,
    SubscriptionError,
    TooManySubscribersError,
    WrongExpectedVersionError,
)
from evstore.serialization import JsonSerializer, Serializer
from evstore.subscriptions import (
    Subscription,
    SubscriptionInfo,
    SubscriptionRequest,
    TransientSubscription,
)
from evstore.subscriptions._sync import SyncSubscription, SyncTransientSubscription

__version__ = "0.1.0"

# A library leaves logging to the application: without a configured handler, evstore's
# records (e.g. a subscription that failed, which its subscriber also gets as an
# exception) are dropped instead of printed by Python's last-resort handler.
logging.getLogger("evstore").addHandler(logging.NullHandler())

__all__ = [
    "ANY_VERSION",
    "NO_STREAM",
    "STREAM_EXISTS",
    "AlreadySubscribedError",
    "AppendResult",
    "AsyncEventStore",
    "CannotAppendToAllStreamError",
    "CannotDeleteAllStreamError",
    "ConcurrencyError",
    "ConfigurationError",
    "DuplicateEventError",
    "EventData",
    "EventNotFoundError",
    "EventStore",
    "EventStoreError",
    "EventStoreTimeoutError",
    "ExpectedVersion",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "JsonSerializer",
    "NotSupportedError",
    "Page",
    "RecordedEvent",
    "Serializer",
    "SnapshotData",
    "SnapshotNotFoundError",
    "StorageError",
    "StreamDeletedError",
    "StreamExistsError",
    "StreamInfo",
    "StreamNotFoundError",
    "Subscription",
    "SubscriptionAlreadyExistsError",
    "SubscriptionError",
    "SubscriptionInfo",
    "SubscriptionRequest",
    "SyncSubscription",
    "SyncTransientSubscription",
    "TooManySubscribersError",
    "TransientSubscription",
    "WrongExpectedVersionError",
    "__version__",
]
