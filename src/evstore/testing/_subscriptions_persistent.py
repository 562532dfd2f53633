"""Persistent subscriptions: delivery, start positions, restarts, unsubscribe and delete,
deleted and linked streams.

Reference behaviours (eventstore-behaviour.md §7.2): 47, 48, 54, 55 (subscriptions to
deleted streams), 75-82, 85, 86, 88-97, 113, 140. "Killing" a subscriber or the subscription
process is closing the handle; "subscribed" is ``wait_subscribed``/``subscribed``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from evstore import (
    ANY_VERSION,
    AsyncEventStore,
    RecordedEvent,
    StreamDeletedError,
    SubscriptionAlreadyExistsError,
)
from evstore.testing._subscriptions_support import (
    RECEIVE_TIMEOUT,
    assert_ended,
    assert_nothing,
    batch_numbers,
    next_batch,
    next_numbers,
    receive_and_ack,
    stored_checkpoint,
    stored_subscription,
    unique_name,
    wait_stored_checkpoint,
)
from evstore.testing._support import (
    SuiteBase,
    append_events,
    make_events,
    payloads,
    versions,
)


def _even(event: RecordedEvent) -> bool:
    return event.event_number % 2 == 0


def _number(event: RecordedEvent) -> int:
    return event.event_number


class PersistentSubscriptionTests(SuiteBase):
    """``subscribe_to_stream`` / ``subscribe_to_all_streams``: the basics."""

    async def test_subscription_persistent_subscribed_to_missing_stream(
        self, store: AsyncEventStore
    ) -> None:
        async with await store.subscribe_to_stream("not-yet", "sub") as sub:
            await sub.wait_subscribed(RECEIVE_TIMEOUT)
            assert sub.subscribed
            assert (sub.stream_id, sub.name) == ("not-yet", "sub")
            await assert_nothing(sub)

            await store.append_to_stream("not-yet", 0, make_events(1))
            assert await next_numbers(sub) == [1]

    async def test_subscription_persistent_context_manager_without_await(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 1)
        async with store.subscribe_to_all_streams("sub") as sub:
            assert await next_numbers(sub) == [1]
        # Leaving the block released the name at once.
        async with store.subscribe_to_all_streams("sub") as again:
            await again.wait_subscribed(RECEIVE_TIMEOUT)

    async def test_subscription_persistent_stream_events_match_reads(
        self, store: AsyncEventStore
    ) -> None:
        async with await store.subscribe_to_stream("stream-1", "sub", buffer_size=3) as sub:
            events = await append_events(store, "stream-1", 3)

            batch = await next_batch(sub)
            assert batch == await store.read_stream_forward("stream-1")
            assert batch_numbers(batch) == [1, 2, 3]
            assert versions(batch) == [1, 2, 3]
            assert [e.event_id for e in batch] == [e.event_id for e in events]
            assert [e.correlation_id for e in batch] == [e.correlation_id for e in events]
            assert [e.event_type for e in batch] == ["TestEvent"] * 3
            assert payloads(batch) == [e.data for e in events]
            assert all(e.created_at is not None for e in batch)

    async def test_subscription_persistent_start_from_version(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 1)
        async with await store.subscribe_to_stream("stream-1", "sub", start_from=1) as sub:
            await append_events(store, "stream-1", 1, first=2)

            [event] = await next_batch(sub)
            assert (event.event_number, event.data) == (2, {"event": 2})
            await sub.ack(event)
            await assert_nothing(sub)

    async def test_subscription_persistent_second_subscribe_same_name_refused(
        self, store: AsyncEventStore
    ) -> None:
        async with await store.subscribe_to_stream("stream-1", "sub"):
            with pytest.raises(SubscriptionAlreadyExistsError) as raised:
                await store.subscribe_to_stream("stream-1", "sub")
            assert raised.value.stream_id == "stream-1"
            assert raised.value.subscription_name == "sub"
            # "$all" is a stream id like any other: subscribe_to_all_streams is its shorthand.
            async with await store.subscribe_to_stream("$all", "sub"):
                with pytest.raises(SubscriptionAlreadyExistsError):
                    await store.subscribe_to_all_streams("sub")

    async def test_subscription_persistent_same_name_on_other_stream_is_separate(
        self, store: AsyncEventStore
    ) -> None:
        async with (
            await store.subscribe_to_stream("stream-1", "sub") as first,
            await store.subscribe_to_stream("stream-2", "sub") as second,
        ):
            await append_events(store, "stream-2", 1)
            await append_events(store, "stream-1", 1)

            [one] = await next_batch(first)
            [two] = await next_batch(second)
            assert (one.stream_id, two.stream_id) == ("stream-1", "stream-2")

    async def test_subscription_persistent_ignores_other_streams(
        self, store: AsyncEventStore
    ) -> None:
        async with await store.subscribe_to_stream("stream-1", "sub", buffer_size=10) as sub:
            await append_events(store, "stream-2", 2)
            await append_events(store, "stream-1", 1)

            [event] = await next_batch(sub)
            assert (event.stream_id, event.event_number, event.position) == ("stream-1", 1, 3)
            await sub.ack(event)
            await assert_nothing(sub)

    async def test_subscription_persistent_mapper(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 3)
        async with await store.subscribe_to_stream(
            "stream-1", "sub", buffer_size=3, mapper=_number
        ) as sub:
            assert await next_batch(sub) == [1, 2, 3]
            await sub.ack(3)  # with a mapper, acks are by event number
            await wait_stored_checkpoint(store, "stream-1", "sub", 3)

    async def test_subscription_persistent_selector(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 4)
        async with await store.subscribe_to_stream(
            "stream-1", "sub", buffer_size=10, selector=_even
        ) as sub:
            assert await next_numbers(sub) == [2, 4]

    async def test_subscription_persistent_selector_live_batches(
        self, store: AsyncEventStore
    ) -> None:
        async with await store.subscribe_to_stream(
            "stream-1", "sub", buffer_size=10, selector=_even
        ) as sub:
            await append_events(store, "stream-1", 3)
            assert await receive_and_ack(sub) == [2]
            await append_events(store, "stream-1", 3, first=4)
            assert await receive_and_ack(sub) == [4, 6]

    async def test_subscription_persistent_selector_catch_up_respects_buffer(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 6)
        async with await store.subscribe_to_stream(
            "stream-1", "sub", buffer_size=2, selector=_even
        ) as sub:
            assert await receive_and_ack(sub) == [2, 4]
            assert await receive_and_ack(sub) == [6]
            await assert_nothing(sub)

    async def test_subscription_persistent_selector_and_mapper(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 4)
        async with await store.subscribe_to_stream(
            "stream-1", "sub", buffer_size=10, selector=_even, mapper=_number
        ) as sub:
            assert await next_batch(sub) == [2, 4]

    async def test_subscription_persistent_waits_for_ack(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 3)
        async with await store.subscribe_to_stream("stream-1", "sub") as sub:
            [first] = await next_batch(sub)
            assert first.data == {"event": 1}
            await assert_nothing(sub)

            await sub.ack(first)
            [second] = await next_batch(sub)
            assert second.data == {"event": 2}

            await sub.ack(2)  # an event number works too
            assert await next_numbers(sub) == [3]

    async def test_subscription_persistent_all_streams_in_order(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 1)
        await append_events(store, "stream-2", 1)
        async with await store.subscribe_to_all_streams("sub") as sub:
            [first] = await next_batch(sub)
            assert (first.event_number, first.stream_id, first.stream_version) == (
                1,
                "stream-1",
                1,
            )
            await sub.ack(first)
            [second] = await next_batch(sub)
            assert (second.event_number, second.stream_id, second.stream_version) == (
                2,
                "stream-2",
                1,
            )
            assert [first, second] == await store.read_all_streams_forward()

    async def test_subscription_persistent_all_start_from_position(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 2)
        async with await store.subscribe_to_all_streams("sub", start_from=2) as sub:
            await append_events(store, "stream-2", 2)

            assert await receive_and_ack(sub) == [3]
            assert await receive_and_ack(sub) == [4]
            await assert_nothing(sub)

    async def test_subscription_persistent_partial_ack_holds_back(
        self, store: AsyncEventStore
    ) -> None:
        async with await store.subscribe_to_all_streams("sub", buffer_size=3) as sub:
            await append_events(store, "stream-1", 3)
            batch = await next_batch(sub)
            assert batch_numbers(batch) == [1, 2, 3]

            await sub.ack(batch[0])
            await append_events(store, "stream-1", 3, first=4)
            # Two slots are still taken: one more event at most, never the whole append.
            numbers = await next_numbers(sub)
            assert numbers == [4]
            await sub.ack(batch)  # the last one counts: 2 and 3 are done too
            assert await next_numbers(sub) == [5, 6]

    async def test_subscription_persistent_numbers_stream_vs_all(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "other", 3)
        async with (
            await store.subscribe_to_stream("stream-1", "single", buffer_size=3) as single,
            await store.subscribe_to_all_streams("all", buffer_size=3, start_from=3) as everything,
        ):
            await append_events(store, "stream-1", 3)

            from_stream = await next_batch(single)
            from_all = await next_batch(everything)
            assert batch_numbers(from_stream) == [1, 2, 3]
            assert batch_numbers(from_all) == [4, 5, 6]
            assert versions(from_stream) == versions(from_all) == [1, 2, 3]
            assert [e.position for e in from_stream] == [4, 5, 6]

    async def test_subscription_persistent_several_all_subscriptions(
        self, store: AsyncEventStore
    ) -> None:
        subs = [await store.subscribe_to_all_streams(f"sub-{n}", buffer_size=10) for n in range(4)]
        try:
            await append_events(store, "stream-1", 3)
            await append_events(store, "stream-2", 3)
            for sub in subs:
                received: list[int] = []
                while len(received) < 6:
                    received += await receive_and_ack(sub)
                assert received == [1, 2, 3, 4, 5, 6]
        finally:
            for sub in subs:
                await sub.close()

    async def test_subscription_persistent_resumes_after_checkpoint(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 1)
        async with await store.subscribe_to_stream("stream-1", "sub") as sub:
            assert await receive_and_ack(sub) == [1]
        await append_events(store, "stream-1", 1, first=2)

        async with await store.subscribe_to_stream("stream-1", "sub") as again:
            [event] = await next_batch(again)
            assert (event.event_number, event.data) == (2, {"event": 2})

    async def test_subscription_persistent_start_from_ignored_once_created(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 3)
        async with await store.subscribe_to_stream("stream-1", "sub") as sub:
            assert await receive_and_ack(sub) == [1]
        async with await store.subscribe_to_stream("stream-1", "sub", start_from="current") as sub:
            assert await next_numbers(sub) == [2]
        async with await store.subscribe_to_stream("stream-1", "sub", start_from=0) as sub:
            assert await next_numbers(sub) == [2]

    async def test_subscription_persistent_unacked_events_redelivered(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 3)
        async with await store.subscribe_to_stream("stream-1", "sub", buffer_size=3) as sub:
            assert await next_numbers(sub) == [1, 2, 3]
            await sub.ack(1)

        async with await store.subscribe_to_stream("stream-1", "sub", buffer_size=3) as again:
            assert await next_numbers(again) == [2, 3]

    async def test_subscription_persistent_all_acked_nothing_redelivered(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 3)
        async with await store.subscribe_to_stream("stream-1", "sub", buffer_size=3) as sub:
            assert await receive_and_ack(sub) == [1, 2, 3]

        async with await store.subscribe_to_stream("stream-1", "sub", buffer_size=3) as again:
            await again.wait_subscribed(RECEIVE_TIMEOUT)
            await assert_nothing(again)

    async def test_subscription_persistent_transient_option_keeps_no_checkpoint(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 1)
        async with await store.subscribe_to_stream("stream-1", "sub", transient=True) as sub:
            assert await receive_and_ack(sub) == [1]
        await append_events(store, "stream-1", 1, first=2)
        assert await stored_subscription(store, "stream-1", "sub") is None

        async with await store.subscribe_to_stream("stream-1", "sub", transient=True) as again:
            assert await receive_and_ack(again) == [1]  # no checkpoint: from origin again
        async with await store.subscribe_to_stream(
            "stream-1", "sub", transient=True, start_from=1
        ) as again:
            assert await next_numbers(again) == [2]

    async def test_subscription_persistent_transient_then_persistent(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 2)
        async with await store.subscribe_to_stream("stream-1", "sub", transient=True) as sub:
            assert await receive_and_ack(sub) == [1]
        # The transient run wrote nothing: the persistent one starts from origin.
        async with await store.subscribe_to_stream("stream-1", "sub") as sub:
            assert await receive_and_ack(sub) == [1]
        # A transient run ignores the checkpoint and does not move it.
        async with await store.subscribe_to_stream("stream-1", "sub", transient=True) as sub:
            assert await receive_and_ack(sub) == [1]
            assert await receive_and_ack(sub) == [2]
        assert await stored_checkpoint(store, "stream-1", "sub") == 1
        async with await store.subscribe_to_stream("stream-1", "sub") as sub:
            assert await next_numbers(sub) == [2]

    async def test_subscription_persistent_unsubscribe_stops_and_keeps_checkpoint(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 2)
        sub = await store.subscribe_to_stream("stream-1", "sub")
        assert await receive_and_ack(sub) == [1]
        assert await next_numbers(sub) == [2]  # not acked

        await store.unsubscribe_from_stream("stream-1", "sub")
        await assert_ended(sub)
        assert await stored_checkpoint(store, "stream-1", "sub") == 1
        await store.unsubscribe_from_stream("stream-1", "sub")  # not running: a no-op

        async with await store.subscribe_to_stream("stream-1", "sub") as again:
            assert await receive_and_ack(again) == [2]
            await assert_nothing(again)
        await sub.close()

    async def test_subscription_persistent_unsubscribed_gets_nothing_more(
        self, store: AsyncEventStore
    ) -> None:
        sub = await store.subscribe_to_all_streams("sub")
        await store.unsubscribe_from_all_streams("sub")
        await append_events(store, "stream-1", 1)

        await assert_ended(sub)
        await sub.close()

    async def test_subscription_persistent_async_for_ends_on_unsubscribe(
        self, store: AsyncEventStore
    ) -> None:
        sub = await store.subscribe_to_all_streams("sub", buffer_size=10)
        received: list[int] = []
        got_one = asyncio.Event()

        async def consume() -> None:
            async for batch in sub:
                received.extend(batch_numbers(batch))
                await sub.ack(batch)
                got_one.set()

        consumer = asyncio.create_task(consume())
        try:
            await append_events(store, "stream-1", 2)
            await asyncio.wait_for(got_one.wait(), RECEIVE_TIMEOUT)
            await store.unsubscribe_from_all_streams("sub")
            await asyncio.wait_for(consumer, RECEIVE_TIMEOUT)  # the loop just ends
        finally:
            consumer.cancel()
            await sub.close()
        assert received == [1, 2]

    async def test_subscription_persistent_delete_subscription(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 1)
        sub = await store.subscribe_to_stream("stream-1", "sub")
        assert await receive_and_ack(sub) == [1]
        await wait_stored_checkpoint(store, "stream-1", "sub", 1)

        await store.delete_subscription("stream-1", "sub")
        await assert_ended(sub)
        assert await store.list_subscriptions() == []
        await store.delete_subscription("stream-1", "sub")  # nothing left: a no-op

        # Started fresh: from origin again.
        async with await store.subscribe_to_stream("stream-1", "sub") as again:
            assert await next_numbers(again) == [1]
        await sub.close()

    async def test_subscription_persistent_delete_all_streams_subscription(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 3)
        async with await store.subscribe_to_all_streams("sub", buffer_size=3) as sub:
            assert await receive_and_ack(sub) == [1, 2, 3]
        assert await stored_checkpoint(store, "$all", "sub") == 3

        await store.delete_all_streams_subscription("sub")
        assert await stored_subscription(store, "$all", "sub") is None
        async with await store.subscribe_to_all_streams("sub", buffer_size=3) as again:
            assert await next_numbers(again) == [1, 2, 3]

    async def test_subscription_persistent_all_origin_and_current(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 3)
        await append_events(store, "stream-2", 3)
        async with await store.subscribe_to_all_streams("origin", buffer_size=3) as sub:
            assert await receive_and_ack(sub) == [1, 2, 3]
            assert await receive_and_ack(sub) == [4, 5, 6]
            await assert_nothing(sub)
        async with await store.subscribe_to_all_streams(
            "current", buffer_size=2, start_from="current"
        ) as sub:
            await sub.wait_subscribed(RECEIVE_TIMEOUT)
            await assert_nothing(sub)
            await append_events(store, "stream-3", 1)
            assert await next_numbers(sub) == [7]

    async def test_subscription_persistent_stream_start_from_current(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 2)
        async with await store.subscribe_to_stream("stream-1", "sub", start_from="current") as sub:
            await append_events(store, "stream-1", 1, first=3)
            assert await next_numbers(sub) == [3]
        assert await stored_checkpoint(store, "stream-1", "sub") == 2

    async def test_subscription_persistent_row_listed(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 5)
        async with await store.subscribe_to_stream("stream-1", "sub", start_from=2) as sub:
            await sub.wait_subscribed(RECEIVE_TIMEOUT)
        async with await store.subscribe_to_all_streams("all-sub") as sub:
            await sub.wait_subscribed(RECEIVE_TIMEOUT)

        infos = await store.list_subscriptions()
        assert [(i.stream_id, i.subscription_name) for i in infos] == [
            ("$all", "all-sub"),
            ("stream-1", "sub"),
        ]
        assert [i.checkpoint for i in infos] == [0, 2]
        assert [i.parked_count for i in infos] == [0, 0]
        assert all(i.created_at.tzinfo is not None for i in infos)

    # -- deleted streams (47, 48, 54, 55) ------------------------------------------

    async def test_subscription_persistent_soft_deleted_stream(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 3)
        await store.delete_stream("stream-1", 3)

        # The stream cannot be read: the subscription ends with the error (at subscribe or
        # on the first receive) and never delivers an event.
        sub: Any = None
        with pytest.raises(StreamDeletedError):
            sub = await store.subscribe_to_stream("stream-1", "sub")
            await sub.receive(RECEIVE_TIMEOUT)
        if sub is not None:
            await sub.close()
        with pytest.raises(StreamDeletedError):
            await store.subscribe_to_stream("stream-1", "current", start_from="current")

    async def test_subscription_persistent_stream_soft_deleted_while_running(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 1)
        async with await store.subscribe_to_stream("stream-1", "sub") as sub:
            assert await receive_and_ack(sub) == [1]
            await store.delete_stream("stream-1", 1)
            await append_events(store, "stream-2", 1)  # something moves on the log

            with pytest.raises(StreamDeletedError):
                await sub.receive(RECEIVE_TIMEOUT)

    async def test_subscription_persistent_all_sees_soft_deleted_stream(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 3)
        await store.delete_stream("stream-1", 3)

        async with await store.subscribe_to_all_streams("sub") as sub:
            for expected in (1, 2, 3):
                [event] = await next_batch(sub)
                assert (event.event_number, event.stream_id) == (expected, "stream-1")
                await sub.ack(event)

    async def test_subscription_persistent_hard_deleted_stream(
        self, hard_store: AsyncEventStore
    ) -> None:
        store = hard_store
        await append_events(store, "stream-1", 3)
        await store.delete_stream("stream-1", 3, hard=True)

        async with (
            await store.subscribe_to_stream("stream-1", "single") as single,
            await store.subscribe_to_all_streams("all") as everything,
        ):
            await single.wait_subscribed(RECEIVE_TIMEOUT)
            await assert_nothing(everything)
            await assert_nothing(single)

            await append_events(store, "stream-2", 1)
            [event] = await next_batch(everything)
            assert (event.event_number, event.stream_id) == (4, "stream-2")  # the gap stays
            await assert_nothing(single)

    async def test_subscription_persistent_restart_after_hard_delete(
        self, hard_store: AsyncEventStore
    ) -> None:
        store = hard_store
        await append_events(store, "stream-1", 3)
        async with await store.subscribe_to_all_streams("sub") as sub:
            assert await receive_and_ack(sub) == [1]
        await store.delete_stream("stream-1", 3, hard=True)

        async with await store.subscribe_to_all_streams("sub") as again:
            await assert_nothing(again)
            await append_events(store, "stream-2", 1)
            [event] = await next_batch(again)
            assert (event.event_number, event.stream_id) == (4, "stream-2")

    # -- linked events (140) ---------------------------------------------------------

    async def test_subscription_persistent_linked_stream(self, store: AsyncEventStore) -> None:
        sources = ["source-1", "source-2", "source-3"]
        for source in sources:
            await append_events(store, source, 3)
        async with await store.subscribe_to_stream("linked", "sub", buffer_size=3) as sub:
            for expected_version, source in zip((0, 3, 6), sources, strict=True):
                events = await store.read_stream_forward(source)
                await store.link_to_stream("linked", expected_version, events)

            for first, source in zip((1, 4, 7), sources, strict=True):
                batch = await next_batch(sub)
                assert batch_numbers(batch) == [first, first + 1, first + 2]
                assert [e.stream_id for e in batch] == [source] * 3
                assert versions(batch) == [1, 2, 3]
                await sub.ack(batch)
            await wait_stored_checkpoint(store, "linked", "sub", 9)

    async def test_subscription_persistent_unique_names_do_not_interfere(
        self, store: AsyncEventStore
    ) -> None:
        names = [unique_name() for _ in range(2)]
        async with (
            await store.subscribe_to_stream("stream-1", names[0]) as first,
            await store.subscribe_to_stream("stream-1", names[1], buffer_size=2) as second,
        ):
            await store.append_to_stream("stream-1", ANY_VERSION, make_events(2))
            assert await next_numbers(first) == [1]
            assert await next_numbers(second) == [1, 2]
