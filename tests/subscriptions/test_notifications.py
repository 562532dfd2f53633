"""PostgreSQL notifications are hints: LISTEN wakes followers, polling covers the rest.

Appends come from a second store (its own pool, sequencer and signal), so the subscribing
store learns of them only through LISTEN/NOTIFY or by polling, as with another process.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from evstore import ANY_VERSION, AsyncEventStore, EventData, Subscription

LISTEN_APP = "evstore-listen"


async def _listen_pids(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = $1",
            LISTEN_APP,
        )
    finally:
        await conn.close()
    return [row["pid"] for row in rows]


async def _await_listener(url: str) -> list[int]:
    async with asyncio.timeout(10):
        while not (pids := await _listen_pids(url)):
            await asyncio.sleep(0.05)
    return pids


async def _delivery_time(
    store: AsyncEventStore, other: AsyncEventStore, sub: Subscription
) -> float:
    started = time.monotonic()
    await other.append_to_stream("s", ANY_VERSION, [EventData("E", {})])
    batch = await sub.receive(timeout=10)
    assert batch is not None and len(batch) == 1
    await sub.ack(batch)
    return time.monotonic() - started


async def test_listen_wakes_a_follower_long_before_its_poll_interval(postgres_url: str) -> None:
    async with (
        AsyncEventStore(postgres_url, poll_interval=30) as store,
        AsyncEventStore(postgres_url) as other,
    ):
        sub = await store.subscribe_to_all_streams("hinted")
        await sub.wait_subscribed(10)
        await _await_listener(postgres_url)
        assert await _delivery_time(store, other, sub) < 3.0
        await sub.close()


async def test_events_arrive_within_the_poll_interval_after_the_listener_is_killed(
    postgres_url: str,
) -> None:
    async with (
        AsyncEventStore(postgres_url, poll_interval=0.5) as store,
        AsyncEventStore(postgres_url) as other,
    ):
        sub = await store.subscribe_to_all_streams("survivor")
        await sub.wait_subscribed(10)
        [pid] = await _await_listener(postgres_url)
        admin = await asyncpg.connect(postgres_url)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        # Appended while the listener is down: polling must find it.
        assert await _delivery_time(store, other, sub) < 0.5 + 1.0
        # And the listener comes back (a new session), so hints work again.
        async with asyncio.timeout(10):
            while (pids := await _listen_pids(postgres_url)) in ([], [pid]):
                await asyncio.sleep(0.05)
        assert pid not in pids
        assert await _delivery_time(store, other, sub) < 1.5
        await sub.close()


async def test_with_notifications_disabled_polling_alone_delivers(postgres_url: str) -> None:
    async with (
        AsyncEventStore(postgres_url, notifications=False, poll_interval=0.2) as store,
        AsyncEventStore(postgres_url, notifications=False) as other,
    ):
        sub = await store.subscribe_to_all_streams("polled")
        await sub.wait_subscribed(10)
        transient = await store.subscribe("$all")
        for _ in range(3):
            assert await _delivery_time(store, other, sub) < 0.2 + 1.0
            assert await transient.receive(timeout=2) is not None
        assert await _listen_pids(postgres_url) == []  # no LISTEN session at all
        await transient.close()
        await sub.close()
