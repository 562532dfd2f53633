"""Catch-up and back-pressure: history in ``buffer_size`` batches, the switch to live events,
``max_size``, gaps left by hard deletes, and a selector over a long history.

Reference behaviours (eventstore-behaviour.md §7.2): 83, 103, 105-107, 141, and 108-112
adapted from FSM states to what a subscriber observes (the delivery sequences; the states
themselves are internal).
"""

from __future__ import annotations

import asyncio
from typing import Any

from evstore import ANY_VERSION, AsyncEventStore, EventData, RecordedEvent
from evstore.testing._subscriptions_support import (
    RECEIVE_TIMEOUT,
    assert_nothing,
    batch_numbers,
    next_batch,
    next_numbers,
    receive_and_ack,
    stored_checkpoint,
    wait_checkpoint,
    wait_checkpoint_between,
    wait_stored_checkpoint,
)
from evstore.testing._support import SuiteBase, append_events

SELECTOR_EVENTS = 60
"""Single-event appends in the selector test (the reference uses 100; fewer keep it fast
while still spanning several catch-up pages with ``max_size=7``)."""


def _odd_payload(event: RecordedEvent) -> bool:
    return bool(event.data["event"] % 2 == 1)


async def _append_singles(store: AsyncEventStore, first: int, last: int) -> None:
    for n in range(first, last + 1):
        await store.append_to_stream("stream-1", ANY_VERSION, [EventData("E", {"event": n})])


class CatchUpTests(SuiteBase):
    """History first, then live events, bounded by ``buffer_size`` and ``max_size``."""

    async def test_subscription_catch_up_in_buffer_sized_batches(
        self, store: AsyncEventStore
    ) -> None:
        for count, first in ((1, 1), (2, 2), (3, 4), (4, 7)):
            await append_events(store, "stream-1", count, first=first)
        async with await store.subscribe_to_stream("stream-1", "sub", buffer_size=3) as sub:
            assert await receive_and_ack(sub) == [1, 2, 3]
            assert await receive_and_ack(sub) == [4, 5, 6]
            assert await receive_and_ack(sub) == [7, 8, 9]
            assert await receive_and_ack(sub) == [10]
            await assert_nothing(sub)

            await append_events(store, "stream-1", 5, first=11)
            assert await receive_and_ack(sub) == [11, 12, 13]
            assert await receive_and_ack(sub) == [14, 15]
            await assert_nothing(sub)

    async def test_subscription_catch_up_single_subscriber_buffer_two(
        self, store: AsyncEventStore
    ) -> None:
        async with await store.subscribe_to_all_streams(
            "sub", buffer_size=2, concurrency_limit=2, subscriber="s1"
        ) as sub:
            await append_events(store, "stream-1", 6)
            assert await receive_and_ack(sub) == [1, 2]
            assert await receive_and_ack(sub) == [3, 4]
            assert await receive_and_ack(sub) == [5, 6]
            await assert_nothing(sub)

    async def test_subscription_catch_up_back_pressure_max_size(
        self, store: AsyncEventStore
    ) -> None:
        async with await store.subscribe_to_all_streams("sub", buffer_size=5, max_size=5) as sub:
            for n in range(4):
                await append_events(store, f"stream-{n}", 5)
            for first in (1, 6, 11, 16):
                assert await receive_and_ack(sub) == list(range(first, first + 5))
            await assert_nothing(sub)

    async def test_subscription_catch_up_back_pressure_append_midway(
        self, store: AsyncEventStore
    ) -> None:
        async with await store.subscribe_to_all_streams("sub", buffer_size=5, max_size=5) as sub:
            for n in range(3):
                await append_events(store, f"stream-{n}", 5)
            assert await receive_and_ack(sub) == [1, 2, 3, 4, 5]
            await append_events(store, "stream-3", 5)
            for first in (6, 11, 16):
                assert await receive_and_ack(sub) == list(range(first, first + 5))
            await assert_nothing(sub)

    async def test_subscription_catch_up_max_size_smaller_than_history(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 10)
        async with await store.subscribe_to_stream(
            "stream-1", "sub", buffer_size=4, max_size=3
        ) as sub:
            received: list[int] = []
            while len(received) < 10:
                batch = await receive_and_ack(sub)
                assert len(batch) <= 4
                received += batch
            assert received == list(range(1, 11))
            await assert_nothing(sub)

    async def test_subscription_catch_up_then_live(self, store: AsyncEventStore) -> None:
        for n in range(4):
            await append_events(store, f"stream-{n}", 10)
        async with await store.subscribe_to_all_streams("sub", buffer_size=10) as sub:
            await append_events(store, "stream-0", 10, first=11)
            for first in (1, 11, 21, 31, 41):
                assert await receive_and_ack(sub) == list(range(first, first + 10))
                await wait_checkpoint(sub, first + 9)
            await append_events(store, "stream-0", 10, first=21)
            assert await receive_and_ack(sub) == list(range(51, 61))
            await assert_nothing(sub)
            await append_events(store, "stream-0", 10, first=31)
            assert await receive_and_ack(sub) == list(range(61, 71))
            await wait_stored_checkpoint(store, "$all", "sub", 70)

    async def test_subscription_catch_up_soft_deleted_stream_still_delivered(
        self, store: AsyncEventStore
    ) -> None:
        for n in range(4):
            await append_events(store, f"stream-{n}", 10)
        await store.delete_stream("stream-1", 10)
        async with await store.subscribe_to_all_streams("sub", buffer_size=10) as sub:
            for first, stream_id in ((1, "stream-0"), (11, "stream-1"), (21, "stream-2")):
                batch = await next_batch(sub)
                assert batch_numbers(batch) == list(range(first, first + 10))
                assert {e.stream_id for e in batch} == {stream_id}
                await sub.ack(batch)
                await wait_checkpoint(sub, first + 9)

    async def test_subscription_catch_up_skips_hard_deleted_gap(
        self, hard_store: AsyncEventStore
    ) -> None:
        store = hard_store
        for n in range(4):
            await append_events(store, f"stream-{n}", 10)
        await store.delete_stream("stream-1", 10, hard=True)
        async with await store.subscribe_to_all_streams("sub", buffer_size=10) as sub:
            await append_events(store, "stream-0", 10, first=11)

            assert await receive_and_ack(sub) == list(range(1, 11))
            # 11-20 are gone: the checkpoint may already cover them, but no further.
            await wait_checkpoint_between(sub, 10, 20)
            assert await receive_and_ack(sub) == list(range(21, 31))
            await wait_checkpoint(sub, 30)
            assert await receive_and_ack(sub) == list(range(31, 41))
            await wait_checkpoint(sub, 40)
            assert await receive_and_ack(sub) == list(range(41, 51))
            await wait_checkpoint(sub, 50)
            await append_events(store, "stream-0", 10, first=21)
            assert await receive_and_ack(sub) == list(range(51, 61))
            await assert_nothing(sub)
            await append_events(store, "stream-0", 10, first=31)
            assert await receive_and_ack(sub) == list(range(61, 71))
            await wait_stored_checkpoint(store, "$all", "sub", 70)

    async def test_subscription_catch_up_start_from_number(self, store: AsyncEventStore) -> None:
        # 108: a new subscription starts right after start_from.
        await append_events(store, "stream-1", 4)
        async with await store.subscribe_to_all_streams("sub", start_from=2) as sub:
            await wait_checkpoint(sub, 2)
            assert await receive_and_ack(sub) == [3]
            assert await receive_and_ack(sub) == [4]
            await wait_checkpoint(sub, 4)

    async def test_subscription_catch_up_empty_then_live(self, store: AsyncEventStore) -> None:
        # 109: nothing to catch up, then live events; the checkpoint follows the acks.
        async with await store.subscribe_to_all_streams("sub", buffer_size=3) as sub:
            await sub.wait_subscribed(RECEIVE_TIMEOUT)
            await assert_nothing(sub)
            assert sub.checkpoint == 0
            await append_events(store, "stream-1", 3)
            assert await receive_and_ack(sub) == [1, 2, 3]
            await wait_checkpoint(sub, 3)

    async def test_subscription_catch_up_checkpoint_timer_never_jumps_ahead(
        self, store: AsyncEventStore
    ) -> None:
        # Reference §8 item 5 (the Elixir bug, PRs #325/#327): a checkpoint_after timer
        # firing during catch-up moved the subscription to live and skipped everything
        # between what it had sent and what it had been notified of. Here the timer fires
        # many times while a long history is read in small pages and new events arrive;
        # every event still comes once, in order, and the stored checkpoint never passes
        # what was acknowledged.
        history, live = 120, 30
        await append_events(store, "stream-1", history)
        received: list[int] = []
        async with await store.subscribe_to_stream(
            "stream-1",
            "sub",
            buffer_size=5,
            max_size=10,
            checkpoint_threshold=1000,
            checkpoint_after=0.01,
        ) as sub:
            acked = 0
            while len(received) < history + live:
                batch = await next_batch(sub)
                received += batch_numbers(batch)
                if len(received) == 40:  # mid catch-up: live events arrive
                    await append_events(store, "stream-1", live, first=history + 1)
                stored = await stored_checkpoint(store, "stream-1", "sub")
                assert stored is None or stored <= acked, (stored, acked)
                await sub.ack(batch)
                acked = received[-1]
                await asyncio.sleep(0.005)  # a consumer slow enough for the timer to fire
            await assert_nothing(sub)
        assert received == list(range(1, history + live + 1))
        assert await stored_checkpoint(store, "stream-1", "sub") == history + live

    async def test_subscription_catch_up_appends_during_catch_up(
        self, store: AsyncEventStore
    ) -> None:
        # 110: events appended while history is being delivered come after it, once each.
        await append_events(store, "stream-1", 3)
        async with await store.subscribe_to_stream("stream-1", "sub") as sub:
            assert await next_numbers(sub) == [1]
            await append_events(store, "stream-1", 3, first=4)
            await sub.ack(1)
            received = [await receive_and_ack(sub) for _ in range(5)]
            assert received == [[2], [3], [4], [5], [6]]
            await assert_nothing(sub)

    async def test_subscription_catch_up_live_batch_queued_behind_in_flight(
        self, store: AsyncEventStore
    ) -> None:
        # 111: a second append while the first is in flight waits; each ack frees one slot.
        async with await store.subscribe_to_all_streams("sub", buffer_size=3) as sub:
            await append_events(store, "stream-1", 3)
            assert await next_numbers(sub) == [1, 2, 3]
            await append_events(store, "stream-1", 3, first=4)
            await assert_nothing(sub)

            for acked, released in ((1, 4), (2, 5), (3, 6)):
                await sub.ack(acked)
                assert await next_numbers(sub) == [released]
                await wait_checkpoint(sub, acked)
            await assert_nothing(sub)

    async def test_subscription_catch_up_live_batch_released_whole(
        self, store: AsyncEventStore
    ) -> None:
        # 111: acking the whole first batch releases the whole second one.
        async with await store.subscribe_to_all_streams("sub", buffer_size=3) as sub:
            await append_events(store, "stream-1", 3)
            assert await next_numbers(sub) == [1, 2, 3]
            await append_events(store, "stream-1", 3, first=4)
            await sub.ack(3)
            assert await next_numbers(sub) == [4, 5, 6]

    async def test_subscription_catch_up_at_max_size_one_ack_at_a_time(
        self, store: AsyncEventStore
    ) -> None:
        # 112: with max_size 3 the second batch waits outside memory; acks still release it
        # one event at a time, then reading resumes.
        async with await store.subscribe_to_all_streams("sub", buffer_size=3, max_size=3) as sub:
            await append_events(store, "stream-1", 3)
            assert await next_numbers(sub) == [1, 2, 3]
            await append_events(store, "stream-1", 3, first=4)
            await append_events(store, "stream-2", 2)
            for acked, released in ((1, [4]), (2, [5]), (3, [6])):
                await sub.ack(acked)
                assert await next_numbers(sub) == released
            await sub.ack(6)
            assert await next_numbers(sub) == [7, 8]

    async def test_subscription_catch_up_at_max_size_whole_batch(
        self, store: AsyncEventStore
    ) -> None:
        async with await store.subscribe_to_all_streams("sub", buffer_size=3, max_size=3) as sub:
            await append_events(store, "stream-1", 3)
            assert await next_numbers(sub) == [1, 2, 3]
            await append_events(store, "stream-1", 3, first=4)
            await sub.ack(3)
            assert await receive_and_ack(sub) == [4, 5, 6]
            await assert_nothing(sub)

    async def test_subscription_catch_up_selector_over_long_history(
        self, store: AsyncEventStore
    ) -> None:
        # 141: catch-up, live, and catch-up again after a restart; each odd event alone.
        half = SELECTOR_EVENTS // 2
        await _append_singles(store, 1, half)
        options: dict[str, Any] = {"selector": _odd_payload, "max_size": 7}
        async with await store.subscribe_to_stream("stream-1", "sub", **options) as sub:
            received = [await receive_and_ack(sub) for _ in range(half // 2)]
            await _append_singles(store, half + 1, SELECTOR_EVENTS)
            received += [await receive_and_ack(sub) for _ in range(half // 2)]
            await assert_nothing(sub)
        assert received == [[n] for n in range(1, SELECTOR_EVENTS + 1, 2)]

        await _append_singles(store, SELECTOR_EVENTS + 1, SELECTOR_EVENTS + half)
        async with await store.subscribe_to_stream("stream-1", "sub", **options) as sub:
            resumed = [await receive_and_ack(sub) for _ in range(half // 2)]
            await assert_nothing(sub)
        first = SELECTOR_EVENTS + 1
        assert resumed == [[n] for n in range(first, SELECTOR_EVENTS + half + 1, 2)]
