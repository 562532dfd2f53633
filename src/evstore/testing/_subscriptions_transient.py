"""Transient subscriptions (``subscribe``): live only, one batch per append, no acks.

Reference behaviours (eventstore-behaviour.md §7.2): 70-74, with §1.9's two quirks dropped
as the contract says (batches the selector emptied are not delivered; one handle is one
registration).
"""

from __future__ import annotations

import asyncio
from typing import Any

from evstore import ANY_VERSION, AsyncEventStore, RecordedEvent
from evstore.testing._subscriptions_support import (
    assert_ended,
    assert_nothing,
    batch_numbers,
    next_batch,
)
from evstore.testing._support import SuiteBase, append_events, make_events, payloads


def _even(event: RecordedEvent) -> bool:
    return event.event_number % 2 == 0


def _number(event: RecordedEvent) -> int:
    return event.event_number


class TransientSubscriptionTests(SuiteBase):
    """``subscribe(stream_id, *, selector, mapper)``."""

    async def test_subscription_transient_receives_appended_event(
        self, store: AsyncEventStore
    ) -> None:
        async with store.subscribe("stream-1") as sub:
            events = await append_events(store, "stream-1", 1)

            [received] = await next_batch(sub)
            assert received.data == events[0].data
            assert received.event_id == events[0].event_id
            assert received.stream_id == "stream-1"
            assert received.stream_version == 1

    async def test_subscription_transient_skips_events_appended_before(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 3)
        async with store.subscribe("stream-1") as sub:
            await assert_nothing(sub)
            await append_events(store, "stream-1", 2, first=4)

            batch = await next_batch(sub)
            assert payloads(batch) == [{"event": 4}, {"event": 5}]
            await assert_nothing(sub)

    async def test_subscription_transient_batch_is_the_append_as_in_all(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "other", 2)
        sub = await store.subscribe("stream-1")
        try:
            await append_events(store, "stream-1", 3)

            batch = await next_batch(sub)
            # As read_stream_forward("$all") returns them: event_number is the position.
            assert batch == (await store.read_all_streams_forward())[2:]
            assert batch_numbers(batch) == [3, 4, 5]
            assert [e.stream_version for e in batch] == [1, 2, 3]
        finally:
            await sub.close()

    async def test_subscription_transient_ignores_other_streams(
        self, store: AsyncEventStore
    ) -> None:
        async with store.subscribe("stream-1") as sub:
            await append_events(store, "stream-2", 2)
            await assert_nothing(sub)
            await append_events(store, "stream-1", 1)

            [event] = await next_batch(sub)
            assert event.stream_id == "stream-1"
            assert event.event_number == 3

    async def test_subscription_transient_all_gets_one_batch_per_append(
        self, store: AsyncEventStore
    ) -> None:
        async with store.subscribe("$all") as sub:
            await append_events(store, "stream-1", 1)
            await append_events(store, "stream-2", 2)

            first = await next_batch(sub)
            second = await next_batch(sub)
            assert batch_numbers(first) == [1]
            assert batch_numbers(second) == [2, 3]
            assert [e.stream_id for e in first + second] == ["stream-1", "stream-2", "stream-2"]
            assert first + second == await store.read_all_streams_forward()

    async def test_subscription_transient_mapper(self, store: AsyncEventStore) -> None:
        async with store.subscribe("stream-1", mapper=_number) as sub:
            await append_events(store, "stream-1", 1)

            assert await next_batch(sub) == [1]

    async def test_subscription_transient_selector(self, store: AsyncEventStore) -> None:
        async with store.subscribe("stream-1", selector=_even) as sub:
            await append_events(store, "stream-1", 4)

            batch = await next_batch(sub)
            assert payloads(batch) == [{"event": 2}, {"event": 4}]

    async def test_subscription_transient_selector_and_mapper(self, store: AsyncEventStore) -> None:
        async with store.subscribe("stream-1", selector=_even, mapper=_number) as sub:
            await append_events(store, "stream-1", 4)

            assert await next_batch(sub) == [2, 4]

    async def test_subscription_transient_no_empty_batches(self, store: AsyncEventStore) -> None:
        async with store.subscribe("$all", selector=_even, mapper=_number) as sub:
            await append_events(store, "stream-1", 1)  # 1: filtered out entirely
            await append_events(store, "stream-1", 2)  # 2, 3

            assert await next_batch(sub) == [2]
            await assert_nothing(sub)

    async def test_subscription_transient_stream_created_later(
        self, store: AsyncEventStore
    ) -> None:
        async with store.subscribe("not-yet") as sub:
            await store.append_to_stream("not-yet", 0, make_events(1))

            [event] = await next_batch(sub)
            assert event.stream_id == "not-yet"

    async def test_subscription_transient_close_ends_receive(self, store: AsyncEventStore) -> None:
        sub = await store.subscribe("stream-1")
        await sub.close()
        await sub.close()  # idempotent

        await append_events(store, "stream-1", 1)
        await assert_ended(sub)

    async def test_subscription_transient_async_for_ends_on_close(
        self, store: AsyncEventStore
    ) -> None:
        sub = await store.subscribe("$all")
        received: list[list[Any]] = []
        first = asyncio.Event()

        async def consume() -> None:
            async for batch in sub:
                received.append(batch)
                first.set()

        consumer = asyncio.create_task(consume())
        try:
            await store.append_to_stream("stream-1", ANY_VERSION, make_events(2))
            await asyncio.wait_for(first.wait(), 5)
            await sub.close()
            await asyncio.wait_for(consumer, 5)  # the loop ends, no error
        finally:
            consumer.cancel()
        assert [batch_numbers(b) for b in received] == [[1, 2]]

    async def test_subscription_transient_two_handles_are_independent(
        self, store: AsyncEventStore
    ) -> None:
        first = await store.subscribe("stream-1")
        second = await store.subscribe("stream-1")
        try:
            await append_events(store, "stream-1", 1)
            assert batch_numbers(await next_batch(first)) == [1]
            assert batch_numbers(await next_batch(second)) == [1]

            await first.close()
            await append_events(store, "stream-1", 1, first=2)
            assert batch_numbers(await next_batch(second)) == [2]
            await assert_nothing(second)  # each handle got each append once
            await assert_ended(first)
        finally:
            await first.close()
            await second.close()
