"""``ConformanceSuite``: every topic's test class combined into one.

Coverage of the Elixir reference's portable behaviours (eventstore-behaviour.md §7.2), with
API.md's Python semantics where they differ (exceptions instead of error tuples):

* 1-11, 13-17, 34: ``_append``, ``_expected_version``, ``_concurrency``
* 20-33: ``_read``; 35-41: ``_link``; 43-46, 49-53, 56-58: ``_delete``
* 59-61, 63-68: ``_info_paginate``; 69: ``_expected_version`` (its public equivalent)
* 142-146: ``_snapshots``; 149 and 151 (events and snapshots): ``_stores``
* beyond the reference: ``_metadata``, ``_serialization``, ``_bad_input``

Not here, with the reason:

* 12, 42 (``conn=`` inside a rolled-back transaction): PostgreSQL only; they belong to that
  backend's own tests (the memory and SQLite backends refuse ``conn=``).
* 18 (storage-level errors: unknown internal stream id, uninitialised schema, timeout 0):
  storage internals; the public equivalents are the option checks in ``_bad_input``.
* 19 (event type taken from an Elixir struct): Elixir only; ``EventData`` requires an event
  type (``_bad_input``).
* 47, 48, 54, 55 (subscriptions to deleted streams): subscriptions have their own suite.
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
):
    """Every behaviour a storage backend must show through ``AsyncEventStore``.

    Subclass it as ``Test<Backend>`` and define a ``store_factory`` fixture (see
    :mod:`evstore.testing`). Every test is a coroutine; the ``asyncio`` mark below lets
    the suite run under pytest-asyncio's strict mode as well as its auto mode.
    """

    pytestmark = [pytest.mark.asyncio]
