"""Several subscribers on one subscription: limits, round-robin distribution, subscribers
leaving and joining, and partitioning.

Reference behaviours (eventstore-behaviour.md §7.2): 115-117, 119-122, 124-129, with the
exact distribution examples of §4.3. Subscribers are named ``"s1"``, ``"s2"``, ... and
connect in that order, which breaks the reference's ties ("least recently served first,
then connection order"). "Killing" a subscriber is closing its handle.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest

from evstore import (
    ANY_VERSION,
    AlreadySubscribedError,
    AsyncEventStore,
    RecordedEvent,
    Subscription,
    SubscriptionAlreadyExistsError,
    TooManySubscribersError,
)
from evstore.testing._subscriptions_support import (
    RECEIVE_TIMEOUT,
    assert_nothing,
    drain,
    expect_deliveries,
    next_batch,
    next_numbers,
    open_subscribers,
    receive_and_ack,
    wait_checkpoint,
    wait_stored_checkpoint,
)
from evstore.testing._support import SuiteBase, append_events, make_events


def _by_stream(event: RecordedEvent) -> str:
    return event.stream_id


def _by_payload_mod(divisor: int) -> Callable[[RecordedEvent], int]:
    def key(event: RecordedEvent) -> int:
        return int(event.data["event"]) % divisor

    return key


async def _close_all(subs: list[Subscription]) -> None:
    for sub in subs:
        await sub.close()


class SubscriberConcurrencyTests(SuiteBase):
    """``concurrency_limit``, ``subscriber``, distribution and ``partition_by``."""

    # -- registration (115, 116, 121) ------------------------------------------------

    async def test_subscription_concurrent_limit(self, store: AsyncEventStore) -> None:
        subs = await open_subscribers(store, "sub", 2)
        try:
            with pytest.raises(TooManySubscribersError) as raised:
                await store.subscribe_to_all_streams("sub", concurrency_limit=2, subscriber="s3")
            assert (raised.value.stream_id, raised.value.subscription_name) == ("$all", "sub")
            with pytest.raises(AlreadySubscribedError):
                await store.subscribe_to_all_streams("sub", concurrency_limit=2, subscriber="s1")
        finally:
            await _close_all(subs)

    async def test_subscription_concurrent_refused_without_limit(
        self, store: AsyncEventStore
    ) -> None:
        async with await store.subscribe_to_all_streams("sub", subscriber="s1"):
            with pytest.raises(SubscriptionAlreadyExistsError):
                await store.subscribe_to_all_streams("sub", subscriber="s2")

    async def test_subscription_concurrent_default_subscribers_are_distinct(
        self, store: AsyncEventStore
    ) -> None:
        # Without an explicit identity every call is a subscriber of its own, even from one
        # task; reusing an explicit identity is what AlreadySubscribedError guards.
        first = await store.subscribe_to_all_streams("sub", concurrency_limit=3)
        second = await store.subscribe_to_all_streams("sub", concurrency_limit=3)
        named = await store.subscribe_to_all_streams("sub", concurrency_limit=3, subscriber="x")
        try:
            with pytest.raises(AlreadySubscribedError):
                await store.subscribe_to_all_streams("sub", concurrency_limit=3, subscriber="x")
            await append_events(store, "stream-1", 3)
            got = [await next_numbers(sub) for sub in (first, second, named)]
            assert sorted(n for batch in got for n in batch) == [1, 2, 3]
        finally:
            await _close_all([first, second, named])

    async def test_subscription_concurrent_every_subscriber_subscribed(
        self, store: AsyncEventStore
    ) -> None:
        subs = await open_subscribers(store, "sub", 2, concurrency_limit=3)
        try:
            for sub in subs:
                await sub.wait_subscribed(RECEIVE_TIMEOUT)
                assert sub.subscribed
            late = await store.subscribe_to_all_streams("sub", concurrency_limit=3, subscriber="s3")
            subs.append(late)
            await late.wait_subscribed(RECEIVE_TIMEOUT)
            assert late.subscribed
        finally:
            await _close_all(subs)

    async def test_subscription_concurrent_all_closed_frees_the_name(
        self, store: AsyncEventStore
    ) -> None:
        s1, s2 = await open_subscribers(store, "sub", 2)
        await append_events(store, "stream-1", 6)
        assert await receive_and_ack(s1) == [1]
        assert await next_numbers(s2) == [2]
        await wait_checkpoint(s1, 1)
        await s1.close()
        await s2.close()

        # No subscriber left: the subscription stopped, and resumes from its checkpoint.
        async with await store.subscribe_to_all_streams("sub") as again:
            assert await next_numbers(again) == [2]

    # -- round robin (117, 122, 124) -------------------------------------------------

    async def test_subscription_concurrent_one_event_each(self, store: AsyncEventStore) -> None:
        subs = await open_subscribers(store, "sub", 3)
        await append_events(store, "stream-1", 3)

        for sub, expected in zip(subs, ([1], [2], [3]), strict=True):
            assert await next_numbers(sub) == expected
        for sub in subs:
            await assert_nothing(sub, within=0.05)
        await _close_all(subs)

    async def test_subscription_concurrent_next_available_after_ack(
        self, store: AsyncEventStore
    ) -> None:
        s1, s2 = await open_subscribers(store, "sub", 2)
        await append_events(store, "stream-1", 6)

        assert await next_numbers(s1) == [1]
        assert await next_numbers(s2) == [2]
        await s2.ack(2)
        assert await next_numbers(s2) == [3]
        await s2.ack(3)
        assert await next_numbers(s2) == [4]
        await s2.ack(4)
        assert await next_numbers(s2) == [5]
        await s1.ack(1)
        assert await next_numbers(s1) == [6]
        await assert_nothing(s1, within=0.05)
        await assert_nothing(s2, within=0.05)
        await _close_all([s1, s2])

    async def test_subscription_concurrent_round_robin_buffer_sizes(
        self, store: AsyncEventStore
    ) -> None:
        s1, s2 = await open_subscribers(store, "sub", 2, buffer_sizes=[2, 3])
        await append_events(store, "stream-1", 12)

        assert await next_numbers(s1) == [1, 3]
        assert await next_numbers(s2) == [2, 4, 5]
        await s1.ack(1)
        assert await next_numbers(s1) == [6]
        await s2.ack(5)
        assert await next_numbers(s2) == [7, 8, 9]
        await s1.ack(6)
        assert await next_numbers(s1) == [10, 11]
        await s2.ack(7)
        assert await next_numbers(s2) == [12]
        await s2.ack(12)
        await assert_nothing(s1, within=0.05)
        await assert_nothing(s2, within=0.05)
        await _close_all([s1, s2])

    async def test_subscription_concurrent_pending_events_to_new_subscribers(
        self, store: AsyncEventStore
    ) -> None:
        s1 = await store.subscribe_to_all_streams("sub", concurrency_limit=3, subscriber="s1")
        await append_events(store, "stream-1", 6)
        assert await receive_and_ack(s1) == [1]
        assert await next_numbers(s1) == [2]

        s2 = await store.subscribe_to_all_streams("sub", concurrency_limit=3, subscriber="s2")
        assert await next_numbers(s2) == [3]
        s3 = await store.subscribe_to_all_streams("sub", concurrency_limit=3, subscriber="s3")
        assert await next_numbers(s3) == [4]

        await s2.ack(3)
        assert await next_numbers(s2) == [5]
        await s1.ack(2)
        assert await next_numbers(s1) == [6]
        for sub in (s1, s2, s3):
            await assert_nothing(sub, within=0.05)
        await _close_all([s1, s2, s3])

    async def test_subscription_concurrent_catch_up_next_available(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 3)
        s1, s2 = await open_subscribers(store, "sub", 2)
        await store.append_to_stream("stream-1", 3, make_events(3, first=4))

        assert await next_numbers(s1) == [1]
        assert await next_numbers(s2) == [2]
        for acked in (2, 3, 4):
            await s2.ack(acked)
            assert await next_numbers(s2) == [acked + 1]
        await s1.ack(1)
        assert await next_numbers(s1) == [6]
        await _close_all([s1, s2])

    # -- subscribers leaving (119, 120, 138) -----------------------------------------

    async def test_subscription_concurrent_closed_subscriber_events_redelivered(
        self, store: AsyncEventStore
    ) -> None:
        s1, s2 = await open_subscribers(store, "sub", 2)
        await append_events(store, "stream-1", 6)
        assert await next_numbers(s1) == [1]
        assert await next_numbers(s2) == [2]

        await s1.close()
        assert s2.checkpoint == 0
        await s2.ack(2)
        assert await next_numbers(s2) == [1]  # redelivered, not counted as handled
        assert s2.checkpoint == 0
        await s2.ack(1)
        assert await next_numbers(s2) == [3]
        await wait_checkpoint(s2, 2)
        await s2.close()

    async def test_subscription_concurrent_closed_subscriber_batch_redelivered(
        self, store: AsyncEventStore
    ) -> None:
        s1, s2 = await open_subscribers(store, "sub", 2, buffer_size=2)
        await append_events(store, "stream-1", 3)
        assert await next_numbers(s1) == [1, 3]
        assert await next_numbers(s2) == [2]

        await s1.close()
        assert await next_numbers(s2) == [1]  # one free slot: the oldest comes first
        assert s2.checkpoint == 0
        # Whether acking 2 also covers the redelivered 1 is left open: ack both.
        await s2.ack(2)
        await s2.ack(1)
        assert await next_numbers(s2) == [3]
        await wait_checkpoint(s2, 2)
        await s2.ack(3)
        await wait_stored_checkpoint(store, "$all", "sub", 3)
        await s2.close()

    async def test_subscription_concurrent_closing_one_subscriber_keeps_others(
        self, store: AsyncEventStore
    ) -> None:
        s1, s2 = await open_subscribers(store, "sub", 2, buffer_size=10)
        await s1.close()
        await append_events(store, "stream-1", 3)

        assert await next_numbers(s2) == [1, 2, 3]
        await s2.close()

    # -- partitioning (125-129) ------------------------------------------------------

    async def test_subscription_partition_by_stream_sticks_while_in_flight(
        self, store: AsyncEventStore
    ) -> None:
        s1, s2 = await open_subscribers(store, "sub", 2, buffer_size=2, partition_by=_by_stream)
        await append_events(store, "stream1", 3)
        await store.append_to_stream("stream1", 3, make_events(3, first=4))
        await append_events(store, "stream2", 3)

        assert await next_numbers(s1) == [1, 2]
        assert await next_numbers(s2) == [7, 8]
        await s1.ack(1)
        assert await next_numbers(s1) == [3]
        await s2.ack(7)
        assert await next_numbers(s2) == [9]
        await s1.ack(2)
        assert await next_numbers(s1) == [4]
        await s2.ack(8)
        await s2.ack(9)
        await assert_nothing(s2)  # stream1 stays with s1 while it has events in flight
        await s1.ack(3)
        assert await next_numbers(s1) == [5]
        await s1.ack(4)
        assert await next_numbers(s1) == [6]
        await s1.ack(6)
        await assert_nothing(s1, within=0.05)
        await _close_all([s1, s2])

    async def test_subscription_partition_single_stream_after_each_ack(
        self, store: AsyncEventStore
    ) -> None:
        s1, s2 = await open_subscribers(store, "sub", 2, buffer_size=2, partition_by=_by_stream)
        await append_events(store, "stream1", 3)
        await store.append_to_stream("stream1", 3, make_events(3, first=4))

        assert await next_numbers(s1) == [1, 2]
        await assert_nothing(s2)
        for acked, released in ((1, 3), (2, 4), (3, 5), (4, 6)):
            await s1.ack(acked)
            assert await next_numbers(s1) == [released]
        await s1.ack(5)
        await s1.ack(6)
        await assert_nothing(s1, within=0.05)
        await assert_nothing(s2, within=0.05)
        await _close_all([s1, s2])

    async def test_subscription_partition_by_key_mod_two(self, store: AsyncEventStore) -> None:
        subs = await open_subscribers(
            store, "sub", 3, buffer_size=3, partition_by=_by_payload_mod(2)
        )
        await append_events(store, "stream-1", 9)

        assert await next_numbers(subs[0]) == [1, 3, 5]
        assert await next_numbers(subs[1]) == [2, 4, 6]
        await assert_nothing(subs[2])
        await _close_all(subs)

    async def test_subscription_partition_by_stream_three_subscribers(
        self, store: AsyncEventStore
    ) -> None:
        subs = await open_subscribers(store, "sub", 3, buffer_size=1, partition_by=_by_stream)
        for sub in subs:
            await sub.wait_subscribed(RECEIVE_TIMEOUT)
        for stream_id in ("stream1", "stream2", "stream3"):
            await append_events(store, stream_id, 2)

        for sub, expected in zip(subs, ([1], [3], [5]), strict=True):
            assert await next_numbers(sub) == expected
        for sub, acked in zip(subs, (1, 3, 5), strict=True):
            await sub.ack(acked)
        for sub, expected in zip(subs, ([2], [4], [6]), strict=True):
            assert await next_numbers(sub) == expected
        for sub in subs:
            await assert_nothing(sub, within=0.05)
        await _close_all(subs)

    async def test_subscription_partition_same_partition_after_ack(
        self, store: AsyncEventStore
    ) -> None:
        s1, s2, s3 = await open_subscribers(
            store, "sub", 3, buffer_size=2, partition_by=_by_payload_mod(3)
        )
        await append_events(store, "stream-1", 9)

        assert await next_numbers(s1) == [1, 4]
        assert await next_numbers(s2) == [2, 5]
        assert await next_numbers(s3) == [3, 6]
        await s1.ack(4)
        assert await next_numbers(s1) == [7]
        await s1.ack(7)
        await assert_nothing(s1)
        await s2.ack(5)
        assert await next_numbers(s2) == [8]
        await s3.ack(6)
        assert await next_numbers(s3) == [9]
        await _close_all([s1, s2, s3])

    async def test_subscription_partition_redistributed_to_new_subscriber(
        self, store: AsyncEventStore
    ) -> None:
        options: dict[str, Any] = {
            "concurrency_limit": 3,
            "buffer_size": 2,
            "partition_by": _by_payload_mod(4),
        }
        s1, s2 = await open_subscribers(store, "sub", 2, **options)
        await append_events(store, "stream-1", 16)

        assert await next_numbers(s1) == [1, 5]
        assert await next_numbers(s2) == [2, 6]
        await s1.ack(5)
        assert await next_numbers(s1) == [3, 7]

        s3 = await store.subscribe_to_all_streams("sub", subscriber="s3", **options)
        assert await next_numbers(s3) == [4, 8]
        await s3.ack(8)
        assert await next_numbers(s3) == [9, 13]
        await s3.ack(13)
        assert await next_numbers(s3) == [12, 16]
        await s3.ack(16)
        await assert_nothing(s3)

        await s1.ack(7)
        assert await next_numbers(s1) == [11, 15]
        await s2.ack(6)
        assert await next_numbers(s2) == [10, 14]
        await _close_all([s1, s2, s3])

    async def test_subscription_partition_catch_up_over_capacity(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream1", 3)
        s1, s2 = await open_subscribers(store, "sub", 2, max_size=2, partition_by=_by_stream)
        await store.append_to_stream("stream1", 3, make_events(3, first=4))

        assert await next_numbers(s1) == [1]
        await assert_nothing(s2)  # stream1 is with s1
        await s1.ack(1)
        await expect_deliveries([(s2, [2]), (s1, [3]), (s2, [4]), (s1, [5]), (s2, [6])])
        await assert_nothing(s1, within=0.05)
        await assert_nothing(s2, within=0.05)
        await _close_all([s1, s2])

    @pytest.mark.parametrize(
        ("buffer_size", "max_size", "sequence"),
        [
            pytest.param(1, 1, [[n] for n in range(1, 11)], id="one"),
            pytest.param(5, 10, [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]], id="slightly-larger"),
            pytest.param(5, 100, [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]], id="large-enough"),
        ],
    )
    async def test_subscription_partition_max_queue_size(
        self,
        store: AsyncEventStore,
        buffer_size: int,
        max_size: int,
        sequence: list[list[int]],
    ) -> None:
        s1, s2 = await open_subscribers(
            store, "sub", 2, buffer_size=buffer_size, max_size=max_size, partition_by=_by_stream
        )
        for sub in (s1, s2):
            await sub.wait_subscribed(RECEIVE_TIMEOUT)

        for offset in (0, 10):
            await store.append_to_stream("stream1", offset // 2, make_events(5, first=1))
            await store.append_to_stream("stream2", offset // 2, make_events(5, first=6))
            # The subscribers alternate, s1 first, in both rounds.
            steps = [
                ((s1, s2)[index % 2], [n + offset for n in numbers])
                for index, numbers in enumerate(sequence)
            ]
            await expect_deliveries(steps)
            await assert_nothing(s1, within=0.05)
            await assert_nothing(s2, within=0.05)
        await _close_all([s1, s2])

    async def test_subscription_partition_max_queue_equals_buffer(
        self, store: AsyncEventStore
    ) -> None:
        # The reference's exact sequence for buffer 2 / max_size 2 ([1,2], [3,4], [5], [6,7],
        # ...) relies on a live append being queued whole; a subscription that pages by
        # max_size can hand out 5 and 6 differently. What must hold either way: batches of
        # at most 2, each event once, a stream's events in order and never with two
        # subscribers at the same time.
        s1, s2 = await open_subscribers(
            store, "sub", 2, buffer_size=2, max_size=2, partition_by=_by_stream
        )
        await append_events(store, "stream1", 5)
        await append_events(store, "stream2", 5)

        received = await drain([s1, s2], 10)
        per_stream: dict[str, list[int]] = defaultdict(list)
        for _, batch in received:
            assert 1 <= len(batch) <= 2
            for event in batch:
                per_stream[event.stream_id].append(event.event_number)
        assert per_stream == {"stream1": [1, 2, 3, 4, 5], "stream2": [6, 7, 8, 9, 10]}
        await _close_all([s1, s2])

    async def test_subscription_partition_function_error_ends_subscription(
        self, store: AsyncEventStore
    ) -> None:
        def broken(event: RecordedEvent) -> str:
            raise LookupError("no partition")

        sub = await store.subscribe_to_all_streams("sub", partition_by=broken)
        try:
            await store.append_to_stream("stream-1", ANY_VERSION, make_events(1))
            with pytest.raises(LookupError):
                await next_batch(sub)
        finally:
            await sub.close()
