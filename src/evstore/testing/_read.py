"""Reading and iterating streams and ``$all``, forward and backward.

Reference behaviours: 20-34 (34 lives in ``_append``: ids left out stay ``None``).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from evstore import (
    AsyncEventStore,
    RecordedEvent,
    StreamDeletedError,
    StreamNotFoundError,
)
from evstore.testing._support import (
    USER_METADATA,
    SuiteBase,
    append_events,
    collect,
    numbers,
    versions,
)

batch_sizes = pytest.mark.parametrize("batch_size", [1, 2, 1000])


async def _two_streams(store: AsyncEventStore) -> None:
    """Stream s1 then s2, three events each: $all positions 1-3 and 4-6."""
    await append_events(store, "s1", 3)
    await append_events(store, "s2", 3, first=4)


class ReadTests(SuiteBase):
    """``read_*`` and ``stream_*``."""

    async def test_read_stream_forward_returns_every_field(self, store: AsyncEventStore) -> None:
        appended = await append_events(store, "stream-1", 10)

        events = await store.read_stream_forward("stream-1", 0)

        assert numbers(events) == versions(events) == list(range(1, 11))
        assert [e.position for e in events] == list(range(1, 11))
        for original, event in zip(appended, events, strict=True):
            assert isinstance(event, RecordedEvent)
            assert event.event_id == original.event_id
            assert event.correlation_id == original.correlation_id
            assert event.causation_id == original.causation_id
            assert event.stream_id == "stream-1"
            assert event.event_type == "TestEvent"
            assert event.data == original.data
            assert event.metadata == USER_METADATA
            assert isinstance(event.created_at, datetime)

    async def test_read_stream_backward_returns_newest_first(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 10)

        events = await store.read_stream_backward("stream-1")

        assert numbers(events) == list(range(10, 0, -1))
        assert [e.data["event"] for e in events] == list(range(10, 0, -1))

    async def test_read_stream_start_and_count(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 10)

        async def forward(start: int, count: int) -> list[int]:
            return numbers(await store.read_stream_forward("stream-1", start, count))

        async def backward(start: int, count: int) -> list[int]:
            return numbers(await store.read_stream_backward("stream-1", start, count))

        assert await forward(0, 5) == [1, 2, 3, 4, 5]
        assert await forward(6, 5) == [6, 7, 8, 9, 10]
        assert await forward(1, 3) == await forward(0, 3) == [1, 2, 3]
        assert await forward(9, 100) == [9, 10]
        assert await forward(11, 5) == []
        assert await forward(0, 0) == []
        assert await backward(-1, 3) == [10, 9, 8]
        assert await backward(7, 3) == [7, 6, 5]
        assert await backward(2, 10) == [2, 1]
        assert await backward(20, 2) == [10, 9]
        assert await backward(0, 10) == []
        assert await backward(-1, 0) == []

    async def test_read_missing_stream_raises_not_found(self, store: AsyncEventStore) -> None:
        await append_events(store, "other", 1)

        with pytest.raises(StreamNotFoundError) as raised:
            await store.read_stream_forward("missing")
        assert raised.value.stream_id == "missing"
        with pytest.raises(StreamNotFoundError):
            await store.read_stream_backward("missing")

    @pytest.mark.parametrize("direction", ["forward", "backward"])
    async def test_read_missing_stream_iterator_raises_on_first_step(
        self, store: AsyncEventStore, direction: str
    ) -> None:
        iterator = (
            store.stream_forward("missing")
            if direction == "forward"
            else store.stream_backward("missing")
        )

        with pytest.raises(StreamNotFoundError):
            await anext(iterator)

    async def test_read_all_on_empty_store_is_empty(self, store: AsyncEventStore) -> None:
        assert await store.read_all_streams_forward() == []
        assert await store.read_all_streams_backward() == []
        assert await store.read_stream_forward("$all") == []
        assert await collect(store.stream_all_forward()) == []
        assert await collect(store.stream_all_backward()) == []
        assert await collect(store.stream_forward("$all")) == []

    async def test_read_all_interleaves_streams_in_append_order(
        self, store: AsyncEventStore
    ) -> None:
        for stream_id in ("s1", "s2", "s1", "s2"):
            await append_events(store, stream_id, 1)

        events = await store.read_all_streams_forward()

        assert numbers(events) == [1, 2, 3, 4]
        assert [e.position for e in events] == [1, 2, 3, 4]
        assert [e.stream_id for e in events] == ["s1", "s2", "s1", "s2"]
        assert versions(events) == [1, 1, 2, 2]

    async def test_read_all_start_and_count(self, store: AsyncEventStore) -> None:
        await append_events(store, "s1", 2)
        assert await store.read_all_streams_forward(3) == []
        await append_events(store, "s2", 18)

        assert numbers(await store.read_all_streams_forward(0, 10)) == list(range(1, 11))
        assert numbers(await store.read_all_streams_forward(11, 10)) == list(range(11, 21))
        assert numbers(await store.read_all_streams_backward(-1, 3)) == [20, 19, 18]
        assert numbers(await store.read_all_streams_backward(5, 10)) == [5, 4, 3, 2, 1]
        assert await store.read_all_streams_backward(0) == []
        assert await store.read_all_streams_forward(0, 0) == []

    async def test_read_all_stream_id_reads_global_log(self, store: AsyncEventStore) -> None:
        await _two_streams(store)

        assert await store.read_stream_forward("$all", 2, 3) == (
            await store.read_all_streams_forward(2, 3)
        )
        assert await store.read_stream_backward("$all", 5, 2) == (
            await store.read_all_streams_backward(5, 2)
        )

    @batch_sizes
    async def test_read_stream_forward_iterator_batch_sizes(
        self, store: AsyncEventStore, batch_size: int
    ) -> None:
        await append_events(store, "stream-1", 3)

        events = await collect(store.stream_forward("stream-1", batch_size=batch_size))

        assert numbers(events) == versions(events) == [1, 2, 3]
        assert events == await store.read_stream_forward("stream-1")

    @batch_sizes
    async def test_read_stream_backward_iterator_batch_sizes(
        self, store: AsyncEventStore, batch_size: int
    ) -> None:
        await append_events(store, "stream-1", 3)

        events = await collect(store.stream_backward("stream-1", batch_size=batch_size))

        assert numbers(events) == [3, 2, 1]
        assert events == await store.read_stream_backward("stream-1")

    async def test_read_stream_iterator_start_versions(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 3)

        async def forward(start: int, batch_size: int) -> list[int]:
            return numbers(
                await collect(store.stream_forward("stream-1", start, batch_size=batch_size))
            )

        async def backward(start: int, batch_size: int) -> list[int]:
            return numbers(
                await collect(store.stream_backward("stream-1", start, batch_size=batch_size))
            )

        assert await forward(2, 1) == [2, 3]
        assert await forward(4, 1) == []
        assert await forward(0, 2) == await forward(1, 2) == [1, 2, 3]
        assert await backward(2, 2) == [2, 1]
        assert await backward(0, 2) == []
        assert await backward(-1, 2) == [3, 2, 1]

    async def test_read_stream_iterator_many_batches(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 25)

        forward = await collect(store.stream_forward("stream-1", batch_size=4))
        backward = await collect(store.stream_backward("stream-1", batch_size=7))

        assert numbers(forward) == list(range(1, 26))
        assert numbers(backward) == list(range(25, 0, -1))

    @batch_sizes
    async def test_read_all_iterators_batch_sizes(
        self, store: AsyncEventStore, batch_size: int
    ) -> None:
        await _two_streams(store)

        forward = await collect(store.stream_all_forward(0, batch_size=batch_size))
        backward = await collect(store.stream_all_backward(-1, batch_size=batch_size))

        assert numbers(forward) == [1, 2, 3, 4, 5, 6]
        assert versions(forward) == [1, 2, 3, 1, 2, 3]
        assert [e.stream_id for e in forward] == ["s1"] * 3 + ["s2"] * 3
        assert numbers(backward) == [6, 5, 4, 3, 2, 1]
        assert versions(backward) == [3, 2, 1, 3, 2, 1]
        assert forward == await store.read_all_streams_forward()

    async def test_read_all_iterators_start_positions(self, store: AsyncEventStore) -> None:
        await _two_streams(store)

        assert numbers(await collect(store.stream_all_backward(3, batch_size=2))) == [3, 2, 1]
        assert numbers(await collect(store.stream_all_forward(5, batch_size=1))) == [5, 6]
        assert numbers(await collect(store.stream_all_forward(7))) == []
        assert numbers(await collect(store.stream_all_backward(0))) == []

    async def test_read_iterator_sees_events_appended_while_iterating(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 2)
        iterator = store.stream_forward("stream-1", batch_size=2)
        seen = [await anext(iterator), await anext(iterator)]

        await append_events(store, "stream-1", 1, first=3)
        seen += [event async for event in iterator]

        # The iterator reads lazily by batches: the third event, appended before the second
        # batch was read, is included.
        assert numbers(seen) == [1, 2, 3]

    async def test_read_iterator_sees_events_appended_after_a_page_read_ahead(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "s1", 4)
        iterator = store.stream_all_forward(batch_size=2)
        # Going past the first event of the second page starts the read of the third,
        # which comes back empty; the events appended after it are read when asked for.
        seen = [await anext(iterator) for _ in range(4)]
        await append_events(store, "s1", 2, first=5)
        seen += [event async for event in iterator]

        assert numbers(seen) == [1, 2, 3, 4, 5, 6]

    async def test_read_iterators_abandoned_mid_way_release_what_they_hold(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "s1", 10)
        # More abandoned iterators than any pool has connections: each one's page read
        # ahead must be cancelled or finish without keeping a connection.
        for _ in range(40):
            iterator = store.stream_forward("s1", batch_size=3)
            # Past the first event of the page: the next page is being read ahead.
            assert [(await anext(iterator)).event_number for _ in range(2)] == [1, 2]
            await iterator.aclose()  # type: ignore[attr-defined]
        async with asyncio.timeout(10):
            assert numbers(await collect(store.stream_all_forward(batch_size=3))) == list(
                range(1, 11)
            )

    async def test_read_iterator_sees_its_callers_delete_on_the_next_page(
        self, hard_store: AsyncEventStore
    ) -> None:
        for hard, stream in ((False, "soft"), (True, "hard")):
            await append_events(hard_store, stream, 6)
            seen: list[int] = []
            # A page read ahead of the delete must not be handed out after it.
            with pytest.raises((StreamDeletedError, StreamNotFoundError)):
                async for event in hard_store.stream_forward(stream, batch_size=2):
                    seen.append(event.event_number)
                    if event.event_number == 2:
                        await hard_store.delete_stream(stream, 6, hard=hard)
            assert seen == [1, 2], stream
