"""What the subscription test modules share: receiving with timeouts, asserting silence,
waiting for checkpoints, and opening several subscribers of one subscription.

Nothing here sleeps to synchronise: every wait is for an observable condition (a batch,
the end of a subscription, a checkpoint value) with a deadline. The only fixed delays are
the short windows in which "nothing happens" is asserted.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from evstore import (
    AsyncEventStore,
    EventStoreTimeoutError,
    RecordedEvent,
    Subscription,
    SubscriptionInfo,
    TransientSubscription,
)

__all__ = [
    "QUIET",
    "RECEIVE_TIMEOUT",
    "Receiver",
    "assert_ended",
    "assert_nothing",
    "assert_stored_checkpoint_stays",
    "batch_numbers",
    "drain",
    "expect_deliveries",
    "next_batch",
    "next_numbers",
    "open_subscribers",
    "receive_and_ack",
    "stored_checkpoint",
    "stored_subscription",
    "unique_name",
    "wait_checkpoint",
    "wait_checkpoint_between",
    "wait_for",
    "wait_stored_checkpoint",
]

RECEIVE_TIMEOUT = 5.0
"""Longest wait for something that must happen. Generous: a passing test never waits it out,
and a slow machine (or a PostgreSQL round trip per read) must not fail a correct backend."""

QUIET = 0.15
"""How long "nothing is delivered" is watched for. Long enough for a wrongly dispatched batch
to show up (delivery is local and immediate), short enough to keep the suite fast."""

POLL = 0.01
"""Interval between checks of a polled condition (checkpoints, parked lists)."""

Receiver = Subscription | TransientSubscription
"""Either kind of subscription handle: both deliver batches through ``receive``."""


def unique_name(prefix: str = "sub") -> str:
    """A subscription name no other test uses (stores on a shared database see each other)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def batch_numbers(batch: Sequence[Any]) -> list[int]:
    """Event numbers of a delivered batch (mapped values must be event numbers already)."""
    return [item.event_number if isinstance(item, RecordedEvent) else item for item in batch]


async def next_batch(sub: Receiver, timeout: float = RECEIVE_TIMEOUT) -> list[Any]:
    """The subscription's next batch; fails the test when it ended instead."""
    batch = await sub.receive(timeout)
    assert batch is not None, "the subscription ended instead of delivering a batch"
    assert isinstance(batch, list), f"a batch is a list, got {batch!r}"
    assert batch, "a delivered batch is never empty"
    return batch


async def next_numbers(sub: Receiver, timeout: float = RECEIVE_TIMEOUT) -> list[int]:
    """Event numbers of the subscription's next batch."""
    return batch_numbers(await next_batch(sub, timeout))


async def assert_nothing(sub: Receiver, within: float = QUIET) -> None:
    """Nothing is delivered (and the subscription does not end) for ``within`` seconds."""
    try:
        batch = await sub.receive(within)
    except EventStoreTimeoutError:
        return
    if batch is None:
        pytest.fail("expected the subscription to stay open and silent; it ended")
    pytest.fail(f"expected nothing to be delivered, received {batch_numbers(batch)}")


async def assert_ended(sub: Receiver, timeout: float = RECEIVE_TIMEOUT) -> None:
    """The subscription's delivery has ended: ``receive`` returns ``None``."""
    batch = await sub.receive(timeout)
    assert batch is None, f"expected the subscription to have ended, received {batch!r}"


async def receive_and_ack(sub: Subscription, timeout: float = RECEIVE_TIMEOUT) -> list[int]:
    """Receive the next batch, ack its last event, return its event numbers."""
    numbers = await next_numbers(sub, timeout)
    await sub.ack(numbers[-1])
    return numbers


async def expect_deliveries(steps: Sequence[tuple[Subscription, list[int]]]) -> None:
    """For each ``(subscriber, numbers)``: that subscriber's next batch is ``numbers``; ack it.

    Every batch is acked (by its last number) before the next step is awaited, which is
    what the reference's "each after the previous ack" sequences describe.
    """
    for index, (sub, expected) in enumerate(steps):
        received = await next_numbers(sub)
        assert received == expected, f"step {index}: expected {expected}, received {received}"
        await sub.ack(received[-1])


async def drain(
    subs: Sequence[Subscription], total: int, *, timeout: float = RECEIVE_TIMEOUT
) -> list[tuple[int, list[Any]]]:
    """Receive from several subscribers until ``total`` events arrived; ack every batch.

    Each round polls every subscriber briefly and acks what the round received only after
    the round, so batches of different subscribers are in flight together. Returns
    ``(subscriber index, batch)`` pairs in the order received.
    """
    received: list[tuple[int, list[Any]]] = []
    count = 0
    deadline = time.monotonic() + timeout
    while count < total:
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout} s: {count} of {total} events received")
        this_round: list[tuple[int, list[Any]]] = []
        for index, sub in enumerate(subs):
            try:
                batch = await sub.receive(POLL * 5)
            except EventStoreTimeoutError:
                continue
            assert batch, f"subscriber {index} ended or got an empty batch: {batch!r}"
            this_round.append((index, batch))
        for index, batch in this_round:
            await subs[index].ack(batch_numbers(batch)[-1])
            count += len(batch)
        received += this_round
    assert count == total, f"received {count} events, expected {total}"
    return received


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    what: str | Callable[[], str],
    timeout: float = RECEIVE_TIMEOUT,
) -> None:
    """Poll ``condition`` until it is true; fail after ``timeout`` seconds.

    ``what`` describes the condition in the failure message (a callable is evaluated then,
    so the message can show the last value seen).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            described = what() if callable(what) else what
            pytest.fail(f"timed out after {timeout} s waiting for {described}")
        await asyncio.sleep(POLL)


async def wait_checkpoint(
    sub: Subscription, expected: int, timeout: float = RECEIVE_TIMEOUT
) -> None:
    """Wait until ``sub.checkpoint`` (the in-memory checkpoint) equals ``expected``."""
    await wait_for(
        lambda: sub.checkpoint == expected,
        what=lambda: f"sub.checkpoint == {expected} (it is {sub.checkpoint})",
        timeout=timeout,
    )


async def wait_checkpoint_between(
    sub: Subscription, low: int, high: int, timeout: float = RECEIVE_TIMEOUT
) -> None:
    """Wait until ``low <= sub.checkpoint <= high`` (where a backend may legitimately choose)."""
    await wait_for(
        lambda: low <= sub.checkpoint <= high,
        what=lambda: f"{low} <= sub.checkpoint <= {high} (it is {sub.checkpoint})",
        timeout=timeout,
    )


async def stored_subscription(
    store: AsyncEventStore, stream_id: str, name: str
) -> SubscriptionInfo | None:
    """The ``list_subscriptions()`` entry of one subscription, or ``None``."""
    for info in await store.list_subscriptions():
        if info.stream_id == stream_id and info.subscription_name == name:
            return info
    return None


async def stored_checkpoint(store: AsyncEventStore, stream_id: str, name: str) -> int | None:
    """The persisted checkpoint of one subscription, ``None`` when it has no row."""
    info = await stored_subscription(store, stream_id, name)
    return None if info is None else info.checkpoint


async def wait_stored_checkpoint(
    store: AsyncEventStore,
    stream_id: str,
    name: str,
    expected: int,
    timeout: float = RECEIVE_TIMEOUT,
) -> None:
    """Wait until the persisted checkpoint equals ``expected``."""
    seen: list[int | None] = []

    async def reached() -> bool:
        seen.append(await stored_checkpoint(store, stream_id, name))
        return seen[-1] == expected

    await wait_for(
        reached,
        what=lambda: f"stored checkpoint {expected} (it is {seen[-1]})",
        timeout=timeout,
    )


async def assert_stored_checkpoint_stays(
    store: AsyncEventStore, stream_id: str, name: str, expected: int, within: float = QUIET
) -> None:
    """The persisted checkpoint is ``expected`` now and for ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        actual = await stored_checkpoint(store, stream_id, name)
        assert actual == expected, f"stored checkpoint {actual}, expected it to stay {expected}"
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(POLL * 3)


async def open_subscribers(
    store: AsyncEventStore,
    name: str,
    count: int,
    *,
    stream_id: str = "$all",
    buffer_sizes: Sequence[int] | None = None,
    **options: Any,
) -> list[Subscription]:
    """Connect ``count`` subscribers ``"s1"``, ``"s2"``, ... in that order to one subscription.

    Every call passes ``concurrency_limit=count`` (unless ``options`` names one), so the
    subscribers share the subscription; ``buffer_sizes`` gives each its own buffer size.
    """
    options.setdefault("concurrency_limit", count)
    subs: list[Subscription] = []
    for index in range(count):
        own = dict(options)
        if buffer_sizes is not None:
            own["buffer_size"] = buffer_sizes[index]
        subs.append(
            await store.subscribe_to_stream(stream_id, name, subscriber=f"s{index + 1}", **own)
        )
    return subs
