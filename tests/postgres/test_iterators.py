"""Iterators over a PostgreSQL store: the page read ahead is only a guess."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import asyncpg

from evstore import ANY_VERSION, AsyncEventStore, EventData


async def _lock_waiters_become(conn: asyncpg.Connection, wanted: int) -> None:
    """Wait (10 s at most) until ``wanted`` sessions wait for a lock on ``events``."""
    async with asyncio.timeout(10):
        while True:
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'events'::regclass"
            )
            if waiting == wanted:
                return
            await asyncio.sleep(0.02)


@contextlib.contextmanager
def _before_reads(
    store: AsyncEventStore, method: str, before: Callable[[int], Awaitable[None]]
) -> Iterator[list[int]]:
    """Run ``before(n)`` ahead of the store backend's n-th ``method`` read (1-based), on
    the real database; yields the list of call numbers so far."""
    backend: Any = store._backend
    original = getattr(backend, method)
    calls: list[int] = []

    async def read(*args: Any, **kwargs: Any) -> Any:
        calls.append(len(calls) + 1)
        await before(len(calls))
        return await original(*args, **kwargs)

    setattr(backend, method, read)
    try:
        yield calls
    finally:
        setattr(backend, method, original)


async def _nothing(_call: int) -> None:
    return None


async def test_a_read_ahead_that_times_out_while_the_caller_is_busy_is_made_again(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    locker = await asyncpg.connect(postgres_url)
    lock = locker.transaction()

    async def lock_before_the_read_ahead(call: int) -> None:
        if call == 2:  # the second read is the one made ahead: it cannot finish in time
            await lock.start()
            await locker.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")

    try:
        async with AsyncEventStore(postgres_url, timeout=0.5) as store:
            await store.append_to_stream(
                "s", ANY_VERSION, [EventData("E", {"i": i}) for i in range(200)]
            )
            with _before_reads(store, "read_all", lock_before_the_read_ahead) as calls:
                iterator = store.stream_all_forward(batch_size=100)
                # Past the first 1/8 of the page: the second page is read ahead now.
                seen = [(await anext(iterator)).event_number for _ in range(20)]
                await _lock_waiters_become(raw_conn, 1)  # the read ahead waits for the lock
                await _lock_waiters_become(raw_conn, 0)  # its 0.5 s are up: it gave up
                await lock.rollback()

                # The caller asks only now, with the table free: the rest, no timeout.
                async with asyncio.timeout(10):
                    seen += [event.event_number async for event in iterator]
    finally:
        await locker.close()
    assert seen == list(range(1, 201))
    # Page 1, the failed guess at page 2, page 2 again, page 3 ahead (empty), page 3 again.
    assert len(calls) == 5


async def test_a_caller_that_takes_the_first_events_and_stops_reads_one_page(
    postgres_url: str,
) -> None:
    async with AsyncEventStore(postgres_url) as store:
        await store.append_to_stream(
            "s", ANY_VERSION, [EventData("E", {"i": i}) for i in range(2000)]
        )
        with _before_reads(store, "read_stream", _nothing) as calls:
            for _ in range(20):
                latest = store.stream_backward("s")  # pages of 1,000
                assert (await anext(latest)).event_number == 2000
                await latest.aclose()  # type: ignore[attr-defined]
    assert len(calls) == 20  # no page read ahead, none cancelled


async def test_appends_made_while_iterating_keep_the_page_read_ahead(postgres_url: str) -> None:
    async with AsyncEventStore(postgres_url) as store:
        await store.append_to_stream(
            "s", ANY_VERSION, [EventData("E", {"i": i}) for i in range(3000)]
        )
        with _before_reads(store, "read_stream", _nothing) as calls:
            count = 0
            async for _event in store.stream_forward("s", batch_size=1000):
                count += 1
                if count % 500 == 0:  # a projection writing as it goes
                    await store.append_to_stream("other", ANY_VERSION, [EventData("E", {})])
    assert count == 3000
    # Pages 1-3, page 4 ahead (empty), page 4 again when asked: no page read twice.
    assert len(calls) == 5
