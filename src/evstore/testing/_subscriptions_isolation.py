"""Isolation: a failing subscription ends alone; stores on one database share subscriptions
(one owner, the others stand by and take over); stores on different databases share nothing.

Reference behaviours (eventstore-behaviour.md §7.2): 138, 139, 149 and 151 as far as they
concern subscriptions, and the in-process part of 114 and 134 (another store on the same
database holds the subscription; when it lets go, the standby subscribes and delivers the
backlog). Lost locks and notification reconnects (130-133, 135-137) need control over
connections and processes; the backends' own tests cover them.
"""

from __future__ import annotations

import pytest

from evstore import AsyncEventStore, EventStoreTimeoutError, RecordedEvent, Subscription
from evstore.testing._subscriptions_support import (
    QUIET,
    RECEIVE_TIMEOUT,
    Receiver,
    assert_ended,
    assert_nothing,
    next_batch,
    next_numbers,
    receive_and_ack,
    stored_checkpoint,
    wait_stored_checkpoint,
)
from evstore.testing._support import StoreFactory, SuiteBase, append_events, assert_usable

FAST_POLL = 0.05
"""``poll_interval`` of second stores: backends without cross-store notifications (SQLite)
see the other store's commits at the next poll."""

RETRY = 0.05
"""``retry_interval`` of standby subscriptions, so a takeover happens within the test."""


class Boom(Exception):
    """Raised by the deliberately broken selectors and mappers."""


def _breaks_on_second(event: RecordedEvent) -> bool:
    if event.data["event"] == 2:
        raise Boom("selector failed")
    return True


def _broken_mapper(event: RecordedEvent) -> object:
    raise Boom("mapper failed")


async def _receive_until_error(sub: Receiver, limit: int = 5) -> None:
    """Receive (and ack) until the subscription raises; it must within ``limit`` batches."""
    for _ in range(limit):
        batch = await next_batch(sub)
        if isinstance(sub, Subscription):  # persistent: free the slot for the next batch
            await sub.ack(batch[-1].event_number)
    pytest.fail(f"the subscription delivered {limit} batches and never raised")


class SubscriptionIsolationTests(SuiteBase):
    """What one subscription's trouble, or another store, does to the rest."""

    async def test_subscription_isolation_selector_error_ends_only_its_subscription(
        self, store: AsyncEventStore
    ) -> None:
        broken = await store.subscribe_to_all_streams("broken", selector=_breaks_on_second)
        healthy = await store.subscribe_to_all_streams("healthy", buffer_size=10)
        try:
            await append_events(store, "stream-1", 3)

            with pytest.raises(Boom):
                await _receive_until_error(broken)
            assert await receive_and_ack(healthy) == [1, 2, 3]
            await append_events(store, "stream-2", 1)
            assert await receive_and_ack(healthy) == [4]
            await assert_usable(store)
        finally:
            await broken.close()
            await healthy.close()

        # Closed, the failed subscription's name is free again; it resumes where it was.
        async with await store.subscribe_to_all_streams("broken") as again:
            assert (await next_numbers(again))[0] in (1, 2)

    async def test_subscription_isolation_mapper_error(self, store: AsyncEventStore) -> None:
        broken = await store.subscribe_to_stream("stream-1", "broken", mapper=_broken_mapper)
        healthy = await store.subscribe_to_stream("stream-1", "healthy")
        try:
            await append_events(store, "stream-1", 1)
            with pytest.raises(Boom):
                await broken.receive(RECEIVE_TIMEOUT)
            assert await next_numbers(healthy) == [1]
        finally:
            await broken.close()
            await healthy.close()

    async def test_subscription_isolation_transient_selector_error(
        self, store: AsyncEventStore
    ) -> None:
        broken = await store.subscribe("$all", selector=_breaks_on_second)
        healthy = await store.subscribe("$all")
        try:
            await append_events(store, "stream-1", 1)
            await append_events(store, "stream-1", 1, first=2)

            with pytest.raises(Boom):
                await _receive_until_error(broken)
            assert [e.event_number for e in await next_batch(healthy)] == [1]
            assert [e.event_number for e in await next_batch(healthy)] == [2]
            await append_events(store, "stream-1", 1, first=3)
            assert [e.event_number for e in await next_batch(healthy)] == [3]
        finally:
            await broken.close()
            await healthy.close()

    async def test_subscription_isolation_closing_one_keeps_the_other(
        self, store: AsyncEventStore
    ) -> None:
        first = await store.subscribe_to_stream("stream-1", "first")
        second = await store.subscribe_to_stream("stream-1", "second")
        await first.close()
        await append_events(store, "stream-1", 1)

        [event] = await next_batch(second)
        assert event.data == {"event": 1}
        await assert_ended(first)
        await second.close()

    # -- several stores on one database ----------------------------------------------

    async def test_subscription_isolation_stores_on_one_database_see_each_other(
        self, store: AsyncEventStore, store_factory: StoreFactory
    ) -> None:
        other = await store_factory(shared=store, poll_interval=FAST_POLL)
        async with (
            await store.subscribe_to_all_streams("mine", buffer_size=10) as mine,
            await other.subscribe_to_all_streams("theirs", buffer_size=10) as theirs,
        ):
            await append_events(store, "stream-1", 1)
            assert await receive_and_ack(mine) == [1]
            assert await receive_and_ack(theirs) == [1]
            await append_events(other, "stream-2", 1)
            assert await receive_and_ack(theirs) == [2]
            assert await receive_and_ack(mine) == [2]
        names = [(i.stream_id, i.subscription_name) for i in await other.list_subscriptions()]
        assert names == [("$all", "mine"), ("$all", "theirs")]

    async def test_subscription_isolation_standby_takes_over_when_owner_closes(
        self, store: AsyncEventStore, store_factory: StoreFactory
    ) -> None:
        other = await store_factory(shared=store, poll_interval=FAST_POLL)
        await append_events(store, "stream-1", 3)
        owner = await store.subscribe_to_all_streams("sub")
        await owner.wait_subscribed(RECEIVE_TIMEOUT)
        assert await receive_and_ack(owner) == [1]
        assert await next_numbers(owner) == [2]  # in flight when the owner goes

        standby = await other.subscribe_to_all_streams("sub", retry_interval=RETRY)
        try:
            assert not standby.subscribed
            with pytest.raises(EventStoreTimeoutError):
                await standby.wait_subscribed(QUIET)
            await assert_nothing(standby)

            await owner.close()
            await standby.wait_subscribed(RECEIVE_TIMEOUT)
            assert standby.subscribed
            assert await receive_and_ack(standby) == [2]  # resumed from the checkpoint
            assert await receive_and_ack(standby) == [3]
            await append_events(store, "stream-2", 1)
            assert await receive_and_ack(standby) == [4]
            await wait_stored_checkpoint(store, "$all", "sub", 4)
        finally:
            await standby.close()

    async def test_subscription_isolation_standby_takes_over_when_owner_store_closes(
        self, store: AsyncEventStore, store_factory: StoreFactory
    ) -> None:
        other = await store_factory(shared=store, poll_interval=FAST_POLL)
        await append_events(store, "stream-1", 1)
        owner = await store.subscribe_to_stream("stream-1", "sub")
        await owner.wait_subscribed(RECEIVE_TIMEOUT)
        assert await receive_and_ack(owner) == [1]
        standby = await other.subscribe_to_stream("stream-1", "sub", retry_interval=RETRY)
        try:
            await append_events(other, "stream-1", 2, first=2)
            await assert_nothing(standby)

            await store.close()
            await standby.wait_subscribed(RECEIVE_TIMEOUT)
            assert await receive_and_ack(standby) == [2]
            assert await receive_and_ack(standby) == [3]
            await wait_stored_checkpoint(other, "stream-1", "sub", 3)
        finally:
            await standby.close()

    async def test_subscription_isolation_transient_option_needs_no_ownership(
        self, store: AsyncEventStore, store_factory: StoreFactory
    ) -> None:
        other = await store_factory(shared=store, poll_interval=FAST_POLL)
        await append_events(store, "stream-1", 1)
        async with (
            await store.subscribe_to_all_streams("sub") as owner,
            await other.subscribe_to_all_streams("sub", transient=True) as free,
        ):
            await owner.wait_subscribed(RECEIVE_TIMEOUT)
            await free.wait_subscribed(RECEIVE_TIMEOUT)  # no lock to wait for
            assert await next_numbers(owner) == [1]
            assert await next_numbers(free) == [1]

    async def test_subscription_isolation_stores_on_different_databases(
        self, store: AsyncEventStore, store_factory: StoreFactory
    ) -> None:
        other = await store_factory()
        async with (
            await store.subscribe_to_all_streams("sub") as mine,
            await other.subscribe_to_all_streams("sub") as theirs,
        ):
            await mine.wait_subscribed(RECEIVE_TIMEOUT)
            await theirs.wait_subscribed(RECEIVE_TIMEOUT)  # same name, no conflict
            await append_events(store, "stream-1", 1)
            assert await receive_and_ack(mine) == [1]
            await assert_nothing(theirs)
            await wait_stored_checkpoint(store, "$all", "sub", 1)
        assert await stored_checkpoint(other, "$all", "sub") == 0
