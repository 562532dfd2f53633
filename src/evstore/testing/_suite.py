"""``ConformanceSuite``: every topic's test class combined into one.

Coverage of the Elixir reference's portable behaviours (eventstore-behaviour.md §7.2), with
API.md's Python semantics where they differ (exceptions instead of error tuples):

* 1-11, 13-17, 34: ``_append``, ``_expected_version``, ``_concurrency``
* 20-33: ``_read``; 35-41: ``_link``; 43-46, 49-53, 56-58: ``_delete``
* 59-61, 63-68: ``_info_paginate``; 69: ``_expected_version`` (its public equivalent)
* 142-146: ``_snapshots``; 149 and 151 (events and snapshots): ``_stores``
* beyond the reference: ``_metadata``, ``_serialization``, ``_bad_input``

Subscriptions (``_subscriptions_*``; "killing" a subscriber or subscription is closing its
handle, "subscribed" is ``wait_subscribed``):

* 70-74: ``_subscriptions_transient``
* 47, 48, 54, 55, 75-82, 85, 86, 88-97, 113, 140: ``_subscriptions_persistent``
* 98-102, 118, 123 (the checkpoint examples of §4.4): ``_subscriptions_ack``
* 83, 103, 105-107, 141, and 108-112 as delivery sequences: ``_subscriptions_catch_up``
* 115-117, 119-122, 124-129 (the distribution examples of §4.3): ``_subscriptions_concurrency``
* 138, 139, 149 and 151 for subscriptions, and the in-process part of 114 and 134 (a store
  on the same database stands by and takes over when the owner lets go):
  ``_subscriptions_isolation``
* beyond the reference: nack/retry/park/skip/stop, ``message_timeout``,
  ``max_retry_count``, parked events and their replay, strategies
  (``_subscriptions_delivery``, from kurrentdb-protocol.md §4); option checks
  (``_subscriptions_options``)

Where the subscription contract differs from the reference, the suite follows the contract:
47 (a subscription to a soft-deleted stream ends with ``StreamDeletedError`` instead of
staying silent), 54 (a stream subscription to a hard-deleted stream waits for the stream to
be created again), 120 (whether acking 2 also acknowledges a redelivered 1 is left open:
the test acks both).

Not here, with the reason:

* 12, 42 (``conn=`` inside a rolled-back transaction): PostgreSQL only; they belong to that
  backend's own tests (the memory and SQLite backends refuse ``conn=``).
* 18 (storage-level errors: unknown internal stream id, uninitialised schema, timeout 0):
  storage internals; the public equivalents are the option checks in ``_bad_input``.
* 19 (event type taken from an Elixir struct): Elixir only; ``EventData`` requires an event
  type (``_bad_input``).
* 84 (``hibernate_after``): a memory optimisation of Elixir processes, nothing to observe.
* 87, 104 (already-seen or future event numbers injected into the subscription process):
  evstore has no notification messages to inject; the subscription reads by event number,
  so duplicates and gaps cannot arise from notifications. The observable half (no
  duplicates, no spurious events, every event in order) is asserted by every exact
  delivery sequence.
* 108-112 as FSM states: internal; their delivery sequences are in ``_subscriptions_catch_up``.
* 128's exact sequence for buffer 2 / ``max_size`` 2 relies on the reference queueing a live
  append whole beyond ``max_size``; evstore reads pages of ``max_size``, so that variant
  checks the invariants (batch size, each event once, per-stream order) instead.
* 114, 130-137 beyond the in-process takeover (advisory locks held by another connection,
  lost locks, acks while disconnected, notification connections dying and reconnecting):
  they need control over database connections and processes; the backends' own tests and
  ``tests/subscriptions/`` cover them.
* The blocking twin's subscription handles: this suite drives ``AsyncEventStore`` only.
* 60's and 62's numeric stream keys and empty created streams are not public: an empty
  append or link creates no stream; creation order is checked through sorting instead.
"""

from __future__ import annotations

import pytest

from evstore.testing._append import AppendTests
from evstore.testing._bad_input import BadInputTests
from evstore.testing._concurrency import ConcurrencyTests
from evstore.testing._delete import DeleteTests
from evstore.testing._expected_version import ExpectedVersionTests
from evstore.testing._info_paginate import InfoPaginateTests
from evstore.testing._link import LinkTests
from evstore.testing._metadata import MetadataTests
from evstore.testing._read import ReadTests
from evstore.testing._serialization import SerializationTests
from evstore.testing._snapshots import SnapshotTests
from evstore.testing._stores import StoresTests
from evstore.testing._subscriptions_ack import AckCheckpointTests
from evstore.testing._subscriptions_catch_up import CatchUpTests
from evstore.testing._subscriptions_concurrency import SubscriberConcurrencyTests
from evstore.testing._subscriptions_delivery import DeliveryControlTests
from evstore.testing._subscriptions_isolation import SubscriptionIsolationTests
from evstore.testing._subscriptions_options import SubscriptionOptionTests
from evstore.testing._subscriptions_persistent import PersistentSubscriptionTests
from evstore.testing._subscriptions_transient import TransientSubscriptionTests

__all__ = ["ConformanceSuite"]


class ConformanceSuite(
    AppendTests,
    ExpectedVersionTests,
    ConcurrencyTests,
    ReadTests,
    LinkTests,
    DeleteTests,
    InfoPaginateTests,
    MetadataTests,
    SnapshotTests,
    StoresTests,
    SerializationTests,
    BadInputTests,
    TransientSubscriptionTests,
    PersistentSubscriptionTests,
    AckCheckpointTests,
    CatchUpTests,
    SubscriberConcurrencyTests,
    DeliveryControlTests,
    SubscriptionOptionTests,
    SubscriptionIsolationTests,
):
    """Every behaviour a storage backend must show through ``AsyncEventStore``.

    Subclass it as ``Test<Backend>`` and define a ``store_factory`` fixture (see
    :mod:`evstore.testing`). Every test is a coroutine; the ``asyncio`` mark below lets
    the suite run under pytest-asyncio's strict mode as well as its auto mode.
    """

    pytestmark = [pytest.mark.asyncio]
