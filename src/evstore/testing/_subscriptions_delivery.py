"""KurrentDB-style delivery controls: ``nack`` (retry, park, skip, stop), ``message_timeout``,
``max_retry_count``, parked events (listing, replay), and the ``strategy`` option.

Source: kurrentdb-protocol.md §4 as adapted by the subscription contract. With
``max_retry_count=N`` a subscriber sees retry counts 0..N and the next retry parks the event;
parked and skipped events count as handled for the checkpoint.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

import pytest

from evstore import ANY_VERSION, AsyncEventStore, EventData, InvalidArgumentError
from evstore.subscriptions._options import NackAction
from evstore.testing._subscriptions_support import (
    assert_ended,
    assert_nothing,
    batch_numbers,
    drain,
    next_batch,
    next_numbers,
    open_subscribers,
    receive_and_ack,
    stored_subscription,
    wait_checkpoint,
    wait_for,
    wait_stored_checkpoint,
)
from evstore.testing._support import SuiteBase, append_events


async def _parked_numbers(store: AsyncEventStore, stream_id: str, name: str) -> list[int]:
    return batch_numbers(await store.parked_events(stream_id, name))


class DeliveryControlTests(SuiteBase):
    """``nack``, timeouts, retries, parking and strategies."""

    # -- nack ------------------------------------------------------------------------

    async def test_subscription_nack_retry_redelivers_first(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 3)
        async with await store.subscribe_to_stream("stream-1", "sub") as sub:
            [event] = await next_batch(sub)
            assert sub.retry_count(event) == 0

            await sub.nack(event, action="retry")
            [again] = await next_batch(sub)
            assert again == event
            assert sub.retry_count(again) == 1
            assert sub.retry_count(1) == 1  # by number too

            await sub.nack(1)  # "retry" is the default action
            [third] = await next_batch(sub)
            assert sub.retry_count(third) == 2
            await sub.ack(third)
            assert await next_numbers(sub) == [2]
            await wait_checkpoint(sub, 1)

    async def test_subscription_nack_retry_goes_ahead_of_queued_events(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 6)
        async with await store.subscribe_to_stream("stream-1", "sub", buffer_size=3) as sub:
            assert await next_numbers(sub) == [1, 2, 3]
            await sub.nack(2, action="retry")
            assert await next_numbers(sub) == [2]  # the freed slot takes the retry, not 4
            assert sub.retry_count(2) == 1

    async def test_subscription_nack_max_retry_count_parks(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 2)
        async with await store.subscribe_to_stream("stream-1", "sub", max_retry_count=2) as sub:
            for expected_count in (0, 1, 2):
                [event] = await next_batch(sub)
                assert (event.event_number, sub.retry_count(event)) == (1, expected_count)
                await sub.nack(event, action="retry")

            # Retried twice already: the third retry parked it; it counts as handled.
            assert await next_numbers(sub) == [2]
            assert await _parked_numbers(store, "stream-1", "sub") == [1]
            await wait_checkpoint(sub, 1)
            await sub.ack(2)
            await wait_stored_checkpoint(store, "stream-1", "sub", 2)
            info = await stored_subscription(store, "stream-1", "sub")
            assert info is not None
            assert info.parked_count == 1

    async def test_subscription_nack_max_retry_count_zero_parks_first_retry(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 2)
        async with await store.subscribe_to_stream("stream-1", "sub", max_retry_count=0) as sub:
            assert await next_numbers(sub) == [1]
            await sub.nack(1, action="retry")
            assert await next_numbers(sub) == [2]
            assert await _parked_numbers(store, "stream-1", "sub") == [1]

    async def test_subscription_nack_park(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 3)
        async with await store.subscribe_to_stream("stream-1", "sub") as sub:
            [first] = await next_batch(sub)
            await sub.nack(first, action="park")
            [second] = await next_batch(sub)
            await sub.nack([second], action="park")

            assert await next_numbers(sub) == [3]
            await wait_checkpoint(sub, 2)  # parked events are handled
            parked = await store.parked_events("stream-1", "sub")
            assert parked == [first, second]  # oldest parked first, as delivered
            await sub.ack(3)
            await wait_stored_checkpoint(store, "stream-1", "sub", 3)
        info = await stored_subscription(store, "stream-1", "sub")
        assert info is not None
        assert info.parked_count == 2

    async def test_subscription_nack_skip(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 2)
        async with await store.subscribe_to_stream("stream-1", "sub") as sub:
            assert await next_numbers(sub) == [1]
            await sub.nack(1, action="skip")
            assert await next_numbers(sub) == [2]
            await wait_checkpoint(sub, 1)
            assert await store.parked_events("stream-1", "sub") == []
        async with await store.subscribe_to_stream("stream-1", "sub") as again:
            assert await next_numbers(again) == [2]  # 1 is never delivered again

    async def test_subscription_nack_list_is_not_cumulative(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 4)
        async with await store.subscribe_to_stream("stream-1", "sub", buffer_size=3) as sub:
            batch = await next_batch(sub)
            assert batch_numbers(batch) == [1, 2, 3]

            await sub.nack([batch[1]], action="skip")  # only 2
            assert await next_numbers(sub) == [4]
            assert sub.checkpoint == 0  # 1 is still in flight
            await sub.nack([batch[0], batch[2]], action="park")  # 1 and 3, not 2 again
            await wait_checkpoint(sub, 3)
            assert await _parked_numbers(store, "stream-1", "sub") == [1, 3]

    async def test_subscription_nack_stop_ends_subscriber(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 2)
        sub = await store.subscribe_to_stream("stream-1", "sub", buffer_size=2)
        assert await next_numbers(sub) == [1, 2]
        await sub.ack(1)

        await sub.nack(2, action="stop")
        await assert_ended(sub)
        await sub.close()
        # Its unacked event went back: the next subscriber gets it.
        await append_events(store, "stream-1", 1, first=3)
        async with await store.subscribe_to_stream("stream-1", "sub", buffer_size=2) as again:
            assert await next_numbers(again) == [2, 3]

    async def test_subscription_nack_stop_hands_events_to_others(
        self, store: AsyncEventStore
    ) -> None:
        s1, s2 = await open_subscribers(store, "sub", 2, stream_id="stream-1")
        await append_events(store, "stream-1", 3)
        assert await next_numbers(s1) == [1]
        assert await next_numbers(s2) == [2]

        await s1.nack(1, action="stop")
        await assert_ended(s1)
        await s2.ack(2)
        assert await next_numbers(s2) == [1]
        await s2.ack(1)
        assert await next_numbers(s2) == [3]
        await s1.close()
        await s2.close()

    async def test_subscription_nack_refuses_bad_action_and_unknown_event(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 2)
        async with await store.subscribe_to_stream("stream-1", "sub") as sub:
            assert await next_numbers(sub) == [1]
            unknown_action: Any = "explode"
            with pytest.raises(InvalidArgumentError) as raised:
                await sub.nack(1, action=unknown_action)
            assert raised.value.argument == "action"
            with pytest.raises(InvalidArgumentError):
                await sub.nack(999, action="retry")  # never delivered
            # Nothing changed: 1 is still in flight and acks normally.
            assert sub.retry_count(1) == 0
            await sub.ack(1)
            assert await next_numbers(sub) == [2]

    async def test_subscription_nack_stored_but_undelivered_refused(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 3)
        async with await store.subscribe_to_stream("stream-1", "sub") as sub:
            assert await next_numbers(sub) == [1]
            # 2 exists (and the subscription may have read it) but was never delivered.
            actions: tuple[NackAction, ...] = ("retry", "park", "skip")
            for action in actions:
                with pytest.raises(InvalidArgumentError):
                    await sub.nack(2, action=action)
            assert await store.parked_events("stream-1", "sub") == []
            await sub.ack(1)
            assert await next_numbers(sub) == [2]  # not skipped, not parked

    # -- message_timeout -------------------------------------------------------------

    async def test_subscription_message_timeout_retries(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 2)
        async with await store.subscribe_to_stream("stream-1", "sub", message_timeout=0.3) as sub:
            [event] = await next_batch(sub)
            assert sub.retry_count(event) == 0

            [again] = await next_batch(sub)  # not acked in time
            assert again.event_number == 1
            assert sub.retry_count(again) == 1
            await sub.ack(again)
            [second] = await next_batch(sub)
            assert second.event_number == 2
            await sub.ack(second)
            await wait_checkpoint(sub, 2)
            await assert_nothing(sub, within=0.3)  # acked in time: never retried

    async def test_subscription_message_timeout_parks_after_max_retries(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 2)
        async with await store.subscribe_to_stream(
            "stream-1", "sub", message_timeout=0.1, max_retry_count=1
        ) as sub:
            assert await next_numbers(sub) == [1]
            assert await next_numbers(sub) == [1]  # retried once after the timeout
            assert await next_numbers(sub) == [2]  # the next timeout parked it
            assert await _parked_numbers(store, "stream-1", "sub") == [1]
            await sub.ack(2)
            await wait_checkpoint(sub, 2)

    async def test_subscription_message_timeout_late_ack_is_ignored(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 2)
        async with await store.subscribe_to_stream(
            "stream-1", "sub", message_timeout=0.1, max_retry_count=0
        ) as sub:
            assert await next_numbers(sub) == [1]
            assert await next_numbers(sub) == [2]  # 1 timed out and was parked
            await sub.ack(1)  # handled already (parked): ignored, no error
            await sub.ack(2)
            await wait_checkpoint(sub, 2)

    # -- parked events ---------------------------------------------------------------

    async def test_subscription_parked_replay_while_running(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 3)
        async with await store.subscribe_to_stream("stream-1", "sub") as sub:
            for number in (1, 2):
                assert await next_numbers(sub) == [number]
                await sub.nack(number, action="park")
            assert await receive_and_ack(sub) == [3]
            assert await _parked_numbers(store, "stream-1", "sub") == [1, 2]

            await store.replay_parked("stream-1", "sub")
            assert await receive_and_ack(sub) == [1]
            assert await receive_and_ack(sub) == [2]
            await wait_for(
                lambda: _no_parked(store, "stream-1", "sub"), what="the replayed events unparked"
            )
            info = await stored_subscription(store, "stream-1", "sub")
            assert info is not None
            assert info.parked_count == 0
            assert info.checkpoint == 3

    async def test_subscription_parked_replay_ahead_of_new_events(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 3)
        async with await store.subscribe_to_all_streams("sub") as sub:
            for number in (1, 2):
                assert await next_numbers(sub) == [number]
                await sub.nack(number, action="park")
            assert await receive_and_ack(sub) == [3]
        await append_events(store, "stream-2", 2)
        assert await _parked_numbers(store, "$all", "sub") == [1, 2]

        await store.replay_parked("$all", "sub")
        async with await store.subscribe_to_all_streams("sub") as sub:
            delivered = [await receive_and_ack(sub) for _ in range(4)]
            assert delivered == [[1], [2], [4], [5]]
            await wait_for(lambda: _no_parked(store, "$all", "sub"), what="the replay unparked")

    async def test_subscription_parked_kept_across_restarts_and_deleted_with_row(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 2)
        async with await store.subscribe_to_stream("stream-1", "sub") as sub:
            [event] = await next_batch(sub)
            await sub.nack(event, action="park")
            assert await receive_and_ack(sub) == [2]
        assert await store.parked_events("stream-1", "sub") == [event]
        assert await store.parked_events("stream-1", "other") == []

        await store.delete_subscription("stream-1", "sub")
        assert await store.parked_events("stream-1", "sub") == []

    async def test_subscription_parked_replay_with_nothing_parked(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 1)
        async with await store.subscribe_to_stream("stream-1", "sub") as sub:
            assert await receive_and_ack(sub) == [1]
            await store.replay_parked("stream-1", "sub")
            await assert_nothing(sub)

    # -- strategies ------------------------------------------------------------------

    async def test_subscription_strategy_round_robin_is_the_default(
        self, store: AsyncEventStore
    ) -> None:
        subs = await open_subscribers(store, "sub", 2, buffer_size=2, strategy="round_robin")
        await append_events(store, "stream-1", 3)
        assert await next_numbers(subs[0]) == [1, 3]
        assert await next_numbers(subs[1]) == [2]
        for sub in subs:
            await sub.close()

    async def test_subscription_strategy_dispatch_to_single(self, store: AsyncEventStore) -> None:
        s1, s2 = await open_subscribers(
            store, "sub", 2, buffer_size=2, strategy="dispatch_to_single"
        )
        await append_events(store, "stream-1", 5)

        assert await next_numbers(s1) == [1, 2]  # filled first
        assert await next_numbers(s2) == [3, 4]  # then the next one
        await s1.ack(2)
        assert await next_numbers(s1) == [5]
        await assert_nothing(s2, within=0.05)
        await s1.close()
        await s2.close()

    async def test_subscription_strategy_pinned_by_stream(self, store: AsyncEventStore) -> None:
        subs = await open_subscribers(store, "sub", 2, buffer_size=10, strategy="pinned")
        streams = [f"pinned-{n}" for n in range(6)]
        owners: dict[str, set[int]] = defaultdict(set)
        order: dict[str, list[int]] = defaultdict(list)
        for round_ in range(2):
            for stream_id in streams:
                await store.append_to_stream(
                    stream_id, ANY_VERSION, [EventData("E", {"round": round_})]
                )
            for index, batch in await drain(subs, len(streams)):
                for event in batch:
                    owners[event.stream_id].add(index)
                    order[event.stream_id].append(event.stream_version)

        # A stream's events always go to the same subscriber, in order.
        assert all(len(subscribers) == 1 for subscribers in owners.values()), owners
        assert all(versions == [1, 2] for versions in order.values()), order
        for sub in subs:
            await sub.close()

    async def test_subscription_strategy_pinned_by_correlation(
        self, store: AsyncEventStore
    ) -> None:
        subs = await open_subscribers(
            store, "sub", 2, buffer_size=10, strategy="pinned_by_correlation"
        )
        correlations = [uuid.uuid4() for _ in range(4)]
        owners: dict[Any, set[int]] = defaultdict(set)
        for round_ in range(2):
            for n, correlation_id in enumerate(correlations):
                # Different streams, so only the correlation id can keep them together.
                await store.append_to_stream(
                    f"stream-{round_}-{n}",
                    ANY_VERSION,
                    [EventData("E", {"n": n}, correlation_id=correlation_id)],
                )
            for index, batch in await drain(subs, len(correlations)):
                for event in batch:
                    owners[event.correlation_id].add(index)

        assert set(owners) == set(correlations)
        assert all(len(subscribers) == 1 for subscribers in owners.values()), owners
        for sub in subs:
            await sub.close()


async def _no_parked(store: AsyncEventStore, stream_id: str, name: str) -> bool:
    return await store.parked_events(stream_id, name) == []
