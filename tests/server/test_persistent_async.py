"""PersistentSubscriptions with the asyncio kurrentdbclient: management, acks and nacks,
parking and replay, and consumers that are cancelled mid-subscription."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from kurrentdbclient import AsyncKurrentDBClient, NewEvent, StreamState
from kurrentdbclient.exceptions import (
    AlreadyExistsError,
    MaximumSubscriptionsReachedError,
    NotFoundError,
)
from kurrentdbclient.persistent import AsyncPersistentSubscription


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.05)


async def append(client: AsyncKurrentDBClient, stream: str, *types: str) -> list[NewEvent]:
    events = [NewEvent(type=t, data=b"{}") for t in types]
    await client.append_events(stream, current_version=StreamState.ANY, events=events)
    return events


async def take(sub: AsyncPersistentSubscription, count: int) -> list[object]:
    async with asyncio.timeout(10):
        return [await sub.__anext__() for _ in range(count)]


async def test_manage_and_consume(async_client: AsyncKurrentDBClient) -> None:
    client = async_client
    assert await client.list_subscriptions() == []
    await client.create_subscription_to_stream("g", "s", min_checkpoint_count=1)
    with pytest.raises(AlreadyExistsError):
        await client.create_subscription_to_stream("g", "s")
    events = await append(client, "s", "A", "B", "C", "D")

    sub = await client.read_subscription_to_stream("g", "s")
    a, b, c, d = await take(sub, 4)
    await sub.ack(a)
    await sub.nack(b, action="retry")
    await sub.nack(c, action="park")
    await sub.ack(d)
    [retried] = await take(sub, 1)
    assert (retried.id, retried.retry_count) == (events[1].id, 1)  # type: ignore[attr-defined]
    await sub.ack(retried)

    async def parked_and_checkpointed() -> bool:
        info = await client.get_subscription_info("g", "s")
        return info.parked_message_count == 1 and info.last_checkpointed_event_position == "3"

    await wait_for(parked_and_checkpointed)
    await client.replay_parked_events("g", "s")
    [replayed] = await take(sub, 1)
    assert replayed.id == events[2].id  # type: ignore[attr-defined]
    await sub.ack(replayed)

    async def unparked() -> bool:
        return (await client.get_subscription_info("g", "s")).parked_message_count == 0

    await wait_for(unparked)
    await sub.stop()

    await client.update_subscription_to_stream("g", "s", max_subscriber_count=1)
    one = await client.read_subscription_to_stream("g", "s")
    with pytest.raises(MaximumSubscriptionsReachedError):
        await client.read_subscription_to_stream("g", "s")
    await one.stop()
    [listed] = await client.list_subscriptions_to_stream("s")
    assert listed.max_subscriber_count == 1
    await client.delete_subscription("g", "s")
    with pytest.raises(NotFoundError):
        await client.get_subscription_info("g", "s")


async def test_cancelled_consumer_releases_its_events(
    async_client: AsyncKurrentDBClient,
) -> None:
    client = async_client
    await client.create_subscription_to_all("g", from_end=True)
    events = await append(client, "s", "A", "B")
    first = await client.read_subscription_to_all("g")
    second = await client.read_subscription_to_all("g")
    received: list[object] = []

    async def consume() -> None:
        async for event in first:
            received.append(event)

    task = asyncio.create_task(consume())

    async def both_in_flight() -> bool:
        info = await client.get_subscription_info("g")
        return len(received) == 2 and info.total_in_flight_messages == 2

    await wait_for(both_in_flight)
    task.cancel()  # mid-subscription, nothing acked
    with pytest.raises(asyncio.CancelledError):
        await task

    again = await take(second, 2)
    assert sorted(e.id for e in again) == sorted(e.id for e in events)  # type: ignore[attr-defined]
    for event in again:
        await second.ack(event)  # type: ignore[arg-type]

    async def one_connection_nothing_in_flight() -> bool:
        info = await client.get_subscription_info("g")
        return len(info.connections) == 1 and info.total_in_flight_messages == 0

    await wait_for(one_connection_nothing_in_flight)
    await second.stop()
