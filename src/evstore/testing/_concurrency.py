"""Concurrent appends and links, from one store and from two stores on one database.

Reference behaviours: 2, 3, 7, 17, 39 (concurrent part), and §2.3 (each append's events
form one contiguous block of ``$all``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest

from evstore import (
    ANY_VERSION,
    NO_STREAM,
    AppendResult,
    AsyncEventStore,
    ConcurrencyError,
    DuplicateEventError,
    EventData,
    WrongExpectedVersionError,
)
from evstore.testing._support import (
    StoreFactory,
    SuiteBase,
    append_events,
    collect,
    make_events,
    versions,
)

T = TypeVar("T")

WRITERS = 6
"""Concurrent writers per test (the reference uses 4 or 5)."""

store_counts = pytest.mark.parametrize(
    "store_count", [1, 2], ids=["one_store", "two_stores_one_database"]
)


async def _writers(store_factory: StoreFactory, store_count: int) -> list[AsyncEventStore]:
    first = await store_factory()
    return [first] + [await store_factory(shared=True) for _ in range(store_count - 1)]


async def _gather(calls: list[Awaitable[T]]) -> list[T | BaseException]:
    return await asyncio.gather(*calls, return_exceptions=True)


def _successes(outcomes: list[Any]) -> list[AppendResult]:
    unexpected = [
        o
        for o in outcomes
        if isinstance(o, BaseException)
        and not isinstance(o, (ConcurrencyError, DuplicateEventError))
    ]
    assert not unexpected, f"unexpected errors: {unexpected!r}"
    return [o for o in outcomes if isinstance(o, AppendResult)]


class ConcurrencyTests(SuiteBase):
    """Optimistic concurrency under real concurrency."""

    @store_counts
    async def test_concurrency_any_version_appends_to_new_stream_all_succeed(
        self, store_factory: StoreFactory, store_count: int
    ) -> None:
        stores = await _writers(store_factory, store_count)
        batches = [make_events(2, first=10 * i) for i in range(WRITERS)]

        outcomes = await _gather(
            [
                stores[i % len(stores)].append_to_stream("stream-1", ANY_VERSION, batch)
                for i, batch in enumerate(batches)
            ]
        )

        results = _successes(outcomes)
        assert len(results) == WRITERS, outcomes
        assert sorted(r.stream_version for r in results) == list(range(2, 2 * WRITERS + 1, 2))
        events = await stores[0].read_stream_forward("stream-1")
        assert versions(events) == list(range(1, 2 * WRITERS + 1))
        # Each append's two events are adjacent, in order, in the stream and in $all.
        pairs = [(a.data, b.data) for a, b in zip(events[::2], events[1::2], strict=True)]
        assert sorted(pairs, key=lambda p: p[0]["event"]) == [
            ({"event": 10 * i}, {"event": 10 * i + 1}) for i in range(WRITERS)
        ]
        everything = await stores[-1].read_all_streams_forward()
        assert [e.position for e in everything] == list(range(1, 2 * WRITERS + 1))

    @store_counts
    async def test_concurrency_any_version_appends_to_existing_stream_all_succeed(
        self, store_factory: StoreFactory, store_count: int
    ) -> None:
        stores = await _writers(store_factory, store_count)
        await append_events(stores[0], "stream-1", 3)

        outcomes = await _gather(
            [
                stores[i % len(stores)].append_to_stream(
                    "stream-1", ANY_VERSION, make_events(1, first=100 + i)
                )
                for i in range(WRITERS)
            ]
        )

        results = _successes(outcomes)
        assert sorted(r.stream_version for r in results) == list(range(4, 4 + WRITERS))
        events = await stores[-1].read_stream_forward("stream-1")
        assert versions(events) == list(range(1, 4 + WRITERS))
        assert sorted(e.data["event"] for e in events[3:]) == list(range(100, 100 + WRITERS))

    @store_counts
    async def test_concurrency_same_expected_version_exactly_one_wins(
        self, store_factory: StoreFactory, store_count: int
    ) -> None:
        stores = await _writers(store_factory, store_count)
        await append_events(stores[0], "stream-1", 3)

        outcomes = await _gather(
            [
                stores[i % len(stores)].append_to_stream("stream-1", 3, make_events(10))
                for i in range(WRITERS)
            ]
        )

        results = _successes(outcomes)
        assert len(results) == 1, outcomes
        assert results[0].stream_version == 13
        losers = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(losers) == WRITERS - 1
        assert all(type(o) is WrongExpectedVersionError for o in losers), losers
        assert versions(await stores[-1].read_stream_forward("stream-1")) == list(range(1, 14))
        assert (await stores[0].stream_info("$all")).stream_version == 13

    @store_counts
    async def test_concurrency_expected_zero_on_new_stream_exactly_one_wins(
        self, store_factory: StoreFactory, store_count: int
    ) -> None:
        stores = await _writers(store_factory, store_count)

        outcomes = await _gather(
            [
                stores[i % len(stores)].append_to_stream("stream-1", 0, make_events(3))
                for i in range(WRITERS)
            ]
        )

        results = _successes(outcomes)
        assert len(results) == 1, outcomes
        losers = [o for o in outcomes if isinstance(o, BaseException)]
        assert all(type(o) is WrongExpectedVersionError for o in losers), losers
        assert versions(await stores[-1].read_stream_forward("stream-1")) == [1, 2, 3]

    @store_counts
    async def test_concurrency_no_stream_on_new_stream_exactly_one_wins(
        self, store_factory: StoreFactory, store_count: int
    ) -> None:
        stores = await _writers(store_factory, store_count)

        outcomes = await _gather(
            [
                stores[i % len(stores)].append_to_stream("stream-1", NO_STREAM, make_events(2))
                for i in range(WRITERS)
            ]
        )

        results = _successes(outcomes)
        assert len(results) == 1, outcomes
        losers = [o for o in outcomes if isinstance(o, BaseException)]
        assert all(isinstance(o, ConcurrencyError) for o in losers), losers
        assert versions(await stores[-1].read_stream_forward("stream-1")) == [1, 2]

    @store_counts
    async def test_concurrency_appends_to_many_streams_get_contiguous_blocks(
        self, store_factory: StoreFactory, store_count: int
    ) -> None:
        stores = await _writers(store_factory, store_count)
        batches = {f"stream-{i}": make_events(3) for i in range(WRITERS)}

        outcomes = await _gather(
            [
                stores[i % len(stores)].append_to_stream(stream_id, NO_STREAM, batch)
                for i, (stream_id, batch) in enumerate(batches.items())
            ]
        )

        results = _successes(outcomes)
        assert len(results) == WRITERS
        everything = await collect(stores[-1].stream_all_forward(batch_size=4))
        assert [e.position for e in everything] == list(range(1, 3 * WRITERS + 1))
        for block in range(WRITERS):
            chunk = everything[3 * block : 3 * block + 3]
            assert len({e.stream_id for e in chunk}) == 1, "an append's events are not interleaved"
            assert versions(chunk) == [1, 2, 3]
            assert [e.event_id for e in chunk] == [e.event_id for e in batches[chunk[0].stream_id]]
        positions = sorted(r.position or 0 for r in results)
        assert positions == list(range(3, 3 * WRITERS + 1, 3))

    @store_counts
    async def test_concurrency_same_event_id_in_two_streams_one_wins(
        self, store_factory: StoreFactory, store_count: int
    ) -> None:
        stores = await _writers(store_factory, store_count)
        [event] = make_events(1)

        outcomes = await _gather(
            [
                stores[i % len(stores)].append_to_stream(
                    f"stream-{i}", ANY_VERSION, [EventData("E", {"i": i}, event_id=event.event_id)]
                )
                for i in range(WRITERS)
            ]
        )

        results = _successes(outcomes)
        assert len(results) == 1, outcomes
        losers = [o for o in outcomes if isinstance(o, BaseException)]
        assert all(type(o) is DuplicateEventError for o in losers), losers
        everything = await stores[-1].read_all_streams_forward()
        assert [e.event_id for e in everything] == [event.event_id]

    @store_counts
    async def test_concurrency_identical_links_exactly_one_wins(
        self, store_factory: StoreFactory, store_count: int
    ) -> None:
        stores = await _writers(store_factory, store_count)
        await append_events(stores[0], "source", 3)
        source = await stores[0].read_stream_forward("source")

        outcomes = await _gather(
            [
                stores[i % len(stores)].link_to_stream("target", ANY_VERSION, source)
                for i in range(WRITERS)
            ]
        )

        results = _successes(outcomes)
        assert len(results) == 1, outcomes
        losers = [o for o in outcomes if isinstance(o, BaseException)]
        assert all(type(o) is DuplicateEventError for o in losers), losers
        linked = await stores[-1].read_stream_forward("target")
        assert [e.event_id for e in linked] == [e.event_id for e in source]
