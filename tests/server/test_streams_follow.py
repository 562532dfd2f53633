"""The catch-up reader (follow.py) and the filters (filters.py) on real stores."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from evstore import ANY_VERSION, AsyncEventStore, EventData
from evstore.backends.base import NewEvent
from evstore.server.convert import EventEncoder
from evstore.server.dialect import Dialect, Expected, StreamDeleted
from evstore.server.filters import EventFilter, FilterError, checkpoint_interval
from evstore.server.follow import END, START, CaughtUp, Checkpoint, follow_all, follow_stream

ANY = Expected.any()
WAIT = 10.0


@pytest.fixture(params=["sqlite", "memory", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEventStore]:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'events.db'}"
    else:
        url = "memory://"
    async with AsyncEventStore(url, poll_interval=5.0) as opened:
        yield opened


@pytest.fixture
def dialect(store: AsyncEventStore) -> Dialect:
    return Dialect(store)


@pytest.fixture
def make(store: AsyncEventStore) -> Callable[..., NewEvent]:
    encoder = EventEncoder(json_native=True, binary=True)

    def build(event_type: str = "Happened") -> NewEvent:
        return encoder.new_event(uuid.uuid4(), event_type, "application/json", b"{}", b"")

    return build


class Reader:
    """Pulls items from a follower with a timeout on each."""

    def __init__(self, items: AsyncIterator[Any]) -> None:
        self.items = items

    async def next(self) -> Any:
        return await asyncio.wait_for(anext(self.items), WAIT)

    async def take(self, count: int) -> list[Any]:
        return [await self.next() for _ in range(count)]

    async def close(self) -> None:
        await self.items.aclose()  # type: ignore[attr-defined]


def describe(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if isinstance(item, CaughtUp | Checkpoint):
            out.append(item)
        else:
            out.append((item[2], item[0]))
    return out


async def test_stream_history_caught_up_then_live(
    dialect: Dialect, make: Callable[..., NewEvent]
) -> None:
    await dialect.append("s", ANY, [make() for _ in range(5)])
    reader = Reader(follow_stream(dialect, "s", START, page_size=2))
    try:
        got = describe(await reader.take(6))
        assert got == [("s", n) for n in range(1, 6)] + [CaughtUp(revision=4)]
        await dialect.append("s", ANY, [make(), make()])
        await dialect.append("other", ANY, [make()])
        assert describe(await reader.take(2)) == [("s", 6), ("s", 7)]
    finally:
        await reader.close()


async def test_stream_start_is_exclusive(dialect: Dialect, make: Callable[..., NewEvent]) -> None:
    await dialect.append("s", ANY, [make() for _ in range(4)])
    reader = Reader(follow_stream(dialect, "s", 1))
    try:
        assert describe(await reader.take(3)) == [("s", 3), ("s", 4), CaughtUp(revision=3)]
    finally:
        await reader.close()
    reader = Reader(follow_stream(dialect, "s", END))
    try:
        assert describe(await reader.take(1)) == [CaughtUp(revision=3)]
        await dialect.append("s", ANY, [make()])
        assert describe(await reader.take(1)) == [("s", 5)]
    finally:
        await reader.close()


async def test_missing_stream_waits(
    dialect: Dialect, make: Callable[..., NewEvent], store: AsyncEventStore
) -> None:
    reader = Reader(follow_stream(dialect, "later", START))
    try:
        assert describe(await reader.take(1)) == [CaughtUp(revision=None)]
        pending = asyncio.ensure_future(reader.next())
        await asyncio.sleep(0.05)
        assert not pending.done()
        await store.append_to_stream("later", ANY_VERSION, [EventData("Lib", {})])
        assert (await pending)[0] == 1
    finally:
        await reader.close()


async def test_tombstone_ends_a_stream_subscription(
    dialect: Dialect, make: Callable[..., NewEvent]
) -> None:
    await dialect.append("s", ANY, [make()])
    reader = Reader(follow_stream(dialect, "s", START))
    try:
        assert len(await reader.take(2)) == 2
        await dialect.tombstone("s", ANY)
        with pytest.raises(StreamDeleted):
            await reader.take(2)  # maybe the tombstone marker first, then the error
    finally:
        await reader.close()
    with pytest.raises(StreamDeleted):
        await Reader(follow_stream(dialect, "s", START)).next()
    with pytest.raises(StreamDeleted):
        await Reader(follow_stream(dialect, "s", END)).next()


async def test_soft_deleted_stream_resumes_after_undelete(
    dialect: Dialect, make: Callable[..., NewEvent]
) -> None:
    await dialect.append("s", ANY, [make(), make()])
    await dialect.delete("s", ANY)
    reader = Reader(follow_stream(dialect, "s", START))
    try:
        assert describe(await reader.take(1)) == [CaughtUp(revision=None)]
        await dialect.append("s", ANY, [make()])
        assert describe(await reader.take(1)) == [("s", 3)]
    finally:
        await reader.close()


async def test_all_with_filter_and_checkpoints(
    dialect: Dialect, make: Callable[..., NewEvent]
) -> None:
    for index in range(10):
        await dialect.append(f"s{index}", ANY, [make("Keep" if index % 3 == 0 else "Skip")])
    keep = EventFilter.create("event_type", "^Keep$", [])
    reader = Reader(
        follow_all(dialect, START, event_filter=keep, checkpoint_interval=4, page_size=3)
    )
    try:
        got = describe(await reader.take(8))
        assert got == [
            ("s0", 1),
            ("s3", 4),
            Checkpoint(4),
            ("s6", 7),
            Checkpoint(8),
            ("s9", 10),
            Checkpoint(10),
            CaughtUp(position=10),
        ]
        await dialect.append("x", ANY, [make("Skip") for _ in range(4)])
        await dialect.append("y", ANY, [make("Keep")])
        assert describe(await reader.take(2)) == [Checkpoint(14), ("y", 15)]
    finally:
        await reader.close()


async def test_all_start_points(dialect: Dialect, make: Callable[..., NewEvent]) -> None:
    await dialect.append("a", ANY, [make() for _ in range(3)])
    reader = Reader(follow_all(dialect, 2))
    try:
        assert describe(await reader.take(2)) == [("a", 3), CaughtUp(position=3)]
    finally:
        await reader.close()
    reader = Reader(follow_all(dialect, END))
    try:
        assert describe(await reader.take(1)) == [CaughtUp(position=3)]
        await dialect.append("b", ANY, [make()])
        assert describe(await reader.take(1)) == [("b", 4)]
    finally:
        await reader.close()


async def test_empty_log(dialect: Dialect) -> None:
    reader = Reader(follow_all(dialect, START, checkpoint_interval=5))
    try:
        assert await reader.next() == CaughtUp(position=None)
    finally:
        await reader.close()


async def test_live_wakes_on_the_change_signal_not_the_poll(
    dialect: Dialect, make: Callable[..., NewEvent]
) -> None:
    # poll_interval is 5 s: an event delivered well within that came from the signal.
    reader = Reader(follow_all(dialect, START))
    try:
        assert isinstance(await reader.next(), CaughtUp)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await dialect.append("s", ANY, [make()])
        await reader.next()
        assert loop.time() - started < 2.0
    finally:
        await reader.close()


def test_filters() -> None:
    by_prefix = EventFilter.create("stream", "ignored", ["order-", "cust"])
    assert by_prefix.matches("order-1", "T") and by_prefix.matches("customer", "T")
    assert not by_prefix.matches("x-order-1", "T")
    exclude = EventFilter.create("event_type", r"^(?!(\$.+$|PersistentConfig\d+$|Result$))", [])
    assert exclude.matches("s", "OrderPlaced")
    assert not exclude.matches("s", "$metadata")
    assert not exclude.matches("s", "PersistentConfig1")
    assert exclude.matches("s", "Results")
    search = EventFilter.create("event_type", "Placed", [])
    assert search.matches("s", "OrderPlacedEvent")  # .NET IsMatch: a search
    named = EventFilter.create("stream", r"^(?<kind>order)-\k<kind>$", [])
    assert named.matches("order-order", "T")
    assert EventFilter.create("stream", "", []).matches("anything", "T")
    with pytest.raises(FilterError):
        EventFilter.create("stream", "(", [])
    assert checkpoint_interval(30, 5) == 150
    assert checkpoint_interval(None, 1) == 32
    assert checkpoint_interval(0, 0) == 1
