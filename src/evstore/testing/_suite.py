"""``ConformanceSuite``: every topic's test class combined into one."""

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
