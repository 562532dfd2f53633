"""Acknowledgements and checkpoints: ack forms, unexpected acks, the contiguous checkpoint,
``checkpoint_threshold`` and ``checkpoint_after``, flushing on close and unsubscribe.

Reference behaviours (eventstore-behaviour.md §7.2): 98-102, 118 and 123 (the checkpoint
examples of §4.4). ``sub.checkpoint`` is the reference's in-memory ``last_ack``;
``list_subscriptions()`` shows the stored ``last_seen``.
"""

from __future__ import annotations

import pytest

from evstore import AsyncEventStore, InvalidArgumentError, RecordedEvent
from evstore.testing._subscriptions_support import (
    RECEIVE_TIMEOUT,
    assert_nothing,
    assert_stored_checkpoint_stays,
    next_batch,
    next_numbers,
    open_subscribers,
    receive_and_ack,
    stored_checkpoint,
    wait_checkpoint,
    wait_stored_checkpoint,
)
from evstore.testing._support import SuiteBase, append_events


def _every_third(event: RecordedEvent) -> bool:
    return event.event_number % 3 == 0


def _nothing(event: RecordedEvent) -> bool:
    return False


class AckCheckpointTests(SuiteBase):
    """``ack``, ``checkpoint`` and the stored checkpoint."""

    async def test_subscription_ack_each_event_persists_checkpoint(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 3)
        async with await store.subscribe_to_stream("stream-1", "sub") as sub:
            for expected in (1, 2, 3):
                [event] = await next_batch(sub)
                assert event.event_number == expected
                await sub.ack(event)
                await wait_checkpoint(sub, expected)
                await wait_stored_checkpoint(store, "stream-1", "sub", expected)

    async def test_subscription_ack_forms(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 6)
        async with await store.subscribe_to_stream("stream-1", "sub", buffer_size=2) as sub:
            batch = await next_batch(sub)
            await sub.ack(batch)  # a list: its last event counts
            await wait_checkpoint(sub, 2)
            batch = await next_batch(sub)
            await sub.ack(batch[-1])  # one event
            await wait_checkpoint(sub, 4)
            assert await next_numbers(sub) == [5, 6]
            await sub.ack(6)  # an event number
            await wait_checkpoint(sub, 6)
            await wait_stored_checkpoint(store, "stream-1", "sub", 6)

    async def test_subscription_ack_is_cumulative(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 3)
        async with await store.subscribe_to_stream("stream-1", "sub", buffer_size=3) as sub:
            assert await next_numbers(sub) == [1, 2, 3]
            await sub.ack(2)  # 1 and 2
            await wait_checkpoint(sub, 2)
            await append_events(store, "stream-1", 3, first=4)
            assert await next_numbers(sub) == [4, 5]  # two slots were freed, not one

    async def test_subscription_ack_unknown_number_refused(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 2)
        async with await store.subscribe_to_stream("stream-1", "sub") as sub:
            assert await next_numbers(sub) == [1]

            with pytest.raises(InvalidArgumentError) as raised:
                await sub.ack(999)
            assert raised.value.argument == "ack"
            # The subscription carries on as if nothing happened.
            await sub.ack(1)
            assert await next_numbers(sub) == [2]

    async def test_subscription_ack_stored_but_undelivered_refused(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 3)
        async with await store.subscribe_to_stream("stream-1", "sub") as sub:
            assert await next_numbers(sub) == [1]

            # 2 exists (and the subscription may have read it) but was never delivered.
            with pytest.raises(InvalidArgumentError) as raised:
                await sub.ack(2)
            assert raised.value.argument == "ack"
            await assert_nothing(sub)  # and it freed no slot
            assert sub.checkpoint == 0
            await sub.ack(1)
            assert await next_numbers(sub) == [2]

    async def test_subscription_ack_already_acked_is_ignored(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 3)
        async with await store.subscribe_to_stream("stream-1", "sub") as sub:
            [first] = await next_batch(sub)
            await sub.ack(first)
            assert await next_numbers(sub) == [2]

            await sub.ack(first)  # handled already: ignored, no error
            await assert_nothing(sub)  # and it did not free a slot
            await sub.ack(2)
            assert await next_numbers(sub) == [3]
            await wait_checkpoint(sub, 2)

    async def test_subscription_ack_by_number_with_mapper(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 2)
        async with await store.subscribe_to_stream(
            "stream-1", "sub", mapper=lambda e: e.data
        ) as sub:
            assert await next_batch(sub) == [{"event": 1}]
            await sub.ack(1)
            assert await next_batch(sub) == [{"event": 2}]
            await sub.ack(2)
            await wait_stored_checkpoint(store, "stream-1", "sub", 2)

    async def test_subscription_ack_checkpoint_threshold(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 7)
        async with await store.subscribe_to_stream(
            "stream-1", "sub", buffer_size=3, checkpoint_threshold=6
        ) as sub:
            await sub.wait_subscribed(RECEIVE_TIMEOUT)
            assert await receive_and_ack(sub) == [1, 2, 3]
            await wait_checkpoint(sub, 3)
            await assert_stored_checkpoint_stays(store, "stream-1", "sub", 0)

            assert await receive_and_ack(sub) == [4, 5, 6]
            await wait_stored_checkpoint(store, "stream-1", "sub", 6)

            assert await receive_and_ack(sub) == [7]
            await wait_checkpoint(sub, 7)
            await assert_stored_checkpoint_stays(store, "stream-1", "sub", 6)
        # Closing flushed the pending one.
        assert await stored_checkpoint(store, "stream-1", "sub") == 7

    async def test_subscription_ack_checkpoint_after(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 6)
        async with await store.subscribe_to_stream(
            "stream-1", "sub", buffer_size=6, checkpoint_threshold=100, checkpoint_after=0.3
        ) as sub:
            await sub.wait_subscribed(RECEIVE_TIMEOUT)
            assert await receive_and_ack(sub) == [1, 2, 3, 4, 5, 6]
            # Not at once (the threshold is far), but once the period has passed.
            assert await stored_checkpoint(store, "stream-1", "sub") == 0
            await wait_stored_checkpoint(store, "stream-1", "sub", 6)

    async def test_subscription_ack_close_flushes_checkpoint(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 3)
        sub = await store.subscribe_to_stream(
            "stream-1", "sub", buffer_size=3, checkpoint_threshold=100
        )
        assert await receive_and_ack(sub) == [1, 2, 3]
        await wait_checkpoint(sub, 3)
        assert await stored_checkpoint(store, "stream-1", "sub") == 0

        await sub.close()
        assert await stored_checkpoint(store, "stream-1", "sub") == 3

    async def test_subscription_ack_unsubscribe_flushes_checkpoint(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 3)
        sub = await store.subscribe_to_all_streams("sub", buffer_size=3, checkpoint_threshold=100)
        try:
            assert await receive_and_ack(sub) == [1, 2, 3]
            await wait_checkpoint(sub, 3)

            await store.unsubscribe_from_all_streams("sub")
            assert await stored_checkpoint(store, "$all", "sub") == 3
        finally:
            await sub.close()

    async def test_subscription_ack_transient_option_writes_nothing(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 2)
        async with await store.subscribe_to_all_streams("sub", transient=True) as sub:
            assert await receive_and_ack(sub) == [1]
            await wait_checkpoint(sub, 1)
        assert await store.list_subscriptions() == []

    async def test_subscription_ack_checkpoint_in_order(self, store: AsyncEventStore) -> None:
        # §4.4 "should ack events in order": the checkpoint only covers a contiguous prefix.
        s1, s2, s3 = await open_subscribers(store, "sub", 3)
        await append_events(store, "stream-1", 8)
        assert await next_numbers(s1) == [1]
        assert await next_numbers(s2) == [2]
        assert await next_numbers(s3) == [3]

        await s1.ack(1)
        assert await next_numbers(s1) == [4]
        await wait_checkpoint(s1, 1)
        await s2.ack(2)
        assert await next_numbers(s2) == [5]
        await wait_checkpoint(s1, 2)
        await s3.ack(3)
        assert await next_numbers(s3) == [6]
        await wait_checkpoint(s1, 3)

        await s3.ack(6)
        assert await next_numbers(s3) == [7]
        assert s1.checkpoint == 3  # 4 and 5 are still in flight
        await s2.ack(5)
        assert await next_numbers(s2) == [8]
        assert s1.checkpoint == 3

        await s1.ack(4)
        await wait_checkpoint(s1, 6)
        await s3.ack(7)
        await wait_checkpoint(s1, 7)
        await s2.ack(8)
        await wait_checkpoint(s1, 8)
        await wait_stored_checkpoint(store, "$all", "sub", 8)
        for sub in (s1, s2, s3):
            assert sub.checkpoint == 8  # one subscription, one checkpoint
            await assert_nothing(sub, within=0.05)
            await sub.close()

    async def test_subscription_ack_selector_filtered_events_count_as_handled(
        self, store: AsyncEventStore
    ) -> None:
        # §4.4: selector "every third event", two subscribers, twelve events.
        s1, s2 = await open_subscribers(store, "sub", 2, selector=_every_third)
        await append_events(store, "stream-1", 12)
        assert await next_numbers(s1) == [3]
        assert await next_numbers(s2) == [6]

        await s1.ack(3)
        await wait_checkpoint(s1, 5)
        assert await next_numbers(s1) == [9]
        await s1.ack(9)
        assert await next_numbers(s1) == [12]
        assert s1.checkpoint == 5

        await s2.ack(6)
        await wait_checkpoint(s1, 11)
        await s1.ack(12)
        await wait_checkpoint(s1, 12)
        await wait_stored_checkpoint(store, "$all", "sub", 12)
        await assert_nothing(s2, within=0.05)
        for sub in (s1, s2):
            await sub.close()

    async def test_subscription_ack_all_filtered_checkpoint_follows_log(
        self, store: AsyncEventStore
    ) -> None:
        async with await store.subscribe_to_all_streams("sub", selector=_nothing) as sub:
            await append_events(store, "stream-1", 1)
            await wait_checkpoint(sub, 1)
            await append_events(store, "stream-1", 2, first=2)
            await wait_checkpoint(sub, 3)
            await append_events(store, "stream-1", 3, first=4)
            await wait_checkpoint(sub, 6)
            await wait_stored_checkpoint(store, "$all", "sub", 6)
            await assert_nothing(sub, within=0.05)
