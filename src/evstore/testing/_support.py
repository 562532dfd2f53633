"""What every conformance test module shares: the ``store_factory`` contract, a helper that
implements it, event builders and the "nothing was written" fingerprint.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import pytest
import pytest_asyncio

from evstore import ANY_VERSION, AsyncEventStore, EventData, RecordedEvent, StreamInfo

__all__ = [
    "USER_METADATA",
    "StoreFactory",
    "StoreFingerprint",
    "SuiteBase",
    "append_events",
    "assert_usable",
    "collect",
    "fingerprint",
    "make_events",
    "numbers",
    "open_store_factory",
    "payloads",
    "versions",
]

USER_METADATA = {"user": "user@example.com"}
"""The metadata every event built by :func:`make_events` carries."""


class StoreFactory(Protocol):
    """Opens stores on databases of the backend under test.

    ``await store_factory(**options)`` returns an open ``AsyncEventStore`` on a fresh, empty
    database; ``shared=True`` opens it on the database of the first store of the test
    instead, and ``shared=<store>`` on that store's database. Every store is closed when the
    test ends. ``options`` are store options (``enable_hard_deletes=True``, ``serializer=…``).
    """

    async def __call__(
        self, *, shared: bool | AsyncEventStore = False, **options: Any
    ) -> AsyncEventStore: ...


NewDatabase = Callable[[], str | Awaitable[str]]
Cleanup = Callable[[str], Awaitable[object]]


class _Factory:
    def __init__(self, new_database: NewDatabase, defaults: dict[str, Any]) -> None:
        self._new_database = new_database
        self._defaults = defaults
        self.stores: list[AsyncEventStore] = []
        self.databases: list[str] = []

    async def _fresh_url(self) -> str:
        url = self._new_database()
        if inspect.isawaitable(url):
            url = await url
        self.databases.append(url)
        return url

    async def __call__(
        self, *, shared: bool | AsyncEventStore = False, **options: Any
    ) -> AsyncEventStore:
        if isinstance(shared, AsyncEventStore):
            url = shared.url
        elif shared and self.databases:
            url = self.databases[0]
        else:
            url = await self._fresh_url()
        # Constructing may raise (bad options): the bad-input tests rely on seeing that.
        store = AsyncEventStore(url, **{**self._defaults, **options})
        await store.open()
        self.stores.append(store)
        return store


@asynccontextmanager
async def open_store_factory(
    new_database: NewDatabase, *, cleanup: Cleanup | None = None, **default_options: Any
) -> AsyncIterator[StoreFactory]:
    """Implement the ``store_factory`` fixture from a source of fresh database URLs.

    Args:
        new_database: returns (or awaits to) the URL of a new, empty database each call.
        cleanup: awaited with each database URL after every store was closed (e.g.
            ``AsyncEventStore.drop`` for named ``memory://`` databases).
        default_options: store options applied to every store (a call's options win).
    """
    factory = _Factory(new_database, default_options)
    try:
        yield factory
    finally:
        for store in reversed(factory.stores):
            await store.close()
        if cleanup is not None:
            for url in factory.databases:
                await cleanup(url)


class SuiteBase:
    """The fixtures every conformance test class uses; the binding supplies ``store_factory``."""

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        """Overridden by the binding; see :mod:`evstore.testing`."""
        pytest.fail(
            "the conformance suite needs a `store_factory` fixture: define it in the "
            "subclass of ConformanceSuite (see the evstore.testing docstring)"
        )

    @pytest_asyncio.fixture
    async def store(self, store_factory: StoreFactory) -> AsyncEventStore:
        """An open store on a fresh database."""
        return await store_factory()

    @pytest_asyncio.fixture
    async def hard_store(self, store_factory: StoreFactory) -> AsyncEventStore:
        """An open store on a fresh database with hard deletes enabled."""
        return await store_factory(enable_hard_deletes=True)


def make_events(
    count: int, *, first: int = 1, event_type: str = "TestEvent", ids: bool = True
) -> list[EventData]:
    """``count`` events with data ``{"event": i}`` for ``i`` from ``first``.

    Each has the same user metadata and, when ``ids``, random correlation and causation ids.
    """
    return [
        EventData(
            event_type,
            {"event": i},
            dict(USER_METADATA),
            correlation_id=uuid.uuid4() if ids else None,
            causation_id=uuid.uuid4() if ids else None,
        )
        for i in range(first, first + count)
    ]


async def append_events(
    store: AsyncEventStore, stream_id: str, count: int, *, first: int = 1
) -> list[EventData]:
    """Append ``count`` events (see :func:`make_events`) with ``ANY_VERSION``."""
    events = make_events(count, first=first)
    await store.append_to_stream(stream_id, ANY_VERSION, events)
    return events


async def collect(events: AsyncIterator[RecordedEvent]) -> list[RecordedEvent]:
    """Every event an async iterator yields."""
    return [event async for event in events]


def numbers(events: list[RecordedEvent]) -> list[int]:
    """The events' ``event_number`` values."""
    return [event.event_number for event in events]


def versions(events: list[RecordedEvent]) -> list[int]:
    """The events' ``stream_version`` values."""
    return [event.stream_version for event in events]


def payloads(events: list[RecordedEvent]) -> list[Any]:
    """The events' ``data`` values."""
    return [event.data for event in events]


@dataclass(frozen=True)
class StoreFingerprint:
    """Everything a write could change, to prove that a refused call wrote nothing."""

    all_version: int
    all_events: tuple[tuple[int, uuid.UUID], ...]
    streams: tuple[tuple[str, int, str], ...]


def _stream_row(info: StreamInfo) -> tuple[str, int, str]:
    return (info.stream_id, info.stream_version, info.status)


async def fingerprint(store: AsyncEventStore) -> StoreFingerprint:
    """The store's ``$all`` version and events and its listed streams."""
    info = await store.stream_info("$all")
    events = await collect(store.stream_all_forward())
    page = await store.paginate_streams(page_size=10_000)
    return StoreFingerprint(
        info.stream_version,
        tuple((event.position, event.event_id) for event in events),
        tuple(_stream_row(entry) for entry in page.entries),
    )


async def assert_usable(store: AsyncEventStore) -> None:
    """One good append and read-back on a fresh stream, after a refused call."""
    stream_id = f"usable-{uuid.uuid4()}"
    result = await store.append_to_stream(stream_id, 0, make_events(1))
    assert result.stream_version == 1
    [event] = await store.read_stream_forward(stream_id)
    assert event.data == {"event": 1}
