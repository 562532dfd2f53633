"""Iterators over a PostgreSQL store: the page read ahead is only a guess."""

from __future__ import annotations

import asyncio
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


async def test_a_read_ahead_that_times_out_while_the_caller_is_busy_is_made_again(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    locker = await asyncpg.connect(postgres_url)
    lock = locker.transaction()
    async with AsyncEventStore(postgres_url, timeout=0.5) as store:
        await store.append_to_stream(
            "s", ANY_VERSION, [EventData("E", {"i": i}) for i in range(200)]
        )
        # The database is real; the wrapper only picks the moment: the table is locked just
        # before the second read, the one made ahead, so that read cannot finish in time.
        backend: Any = store._backend
        read_all, calls = backend.read_all, 0

        async def locking_read_all(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 2:
                await lock.start()
                await locker.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
            return await read_all(*args, **kwargs)

        backend.read_all = locking_read_all
        try:
            iterator = store.stream_all_forward(batch_size=100)
            # Past the first 1/8 of the page: the second page is read ahead now.
            seen = [(await anext(iterator)).event_number for _ in range(20)]
            await _lock_waiters_become(raw_conn, 1)  # the read ahead waits for the lock
            await _lock_waiters_become(raw_conn, 0)  # its 0.5 s are up: it gave up
            await lock.rollback()

            # The caller asks only now, with the table free: it gets the rest, no timeout.
            async with asyncio.timeout(10):
                seen += [event.event_number async for event in iterator]
        finally:
            backend.read_all = read_all
            await locker.close()
    assert seen == list(range(1, 201))
    # Page 1, the failed guess at page 2, page 2 again, page 3 ahead (empty), page 3 again.
    assert calls == 5


async def test_a_caller_that_takes_the_first_events_and_stops_reads_one_page(
    postgres_url: str,
) -> None:
    async with AsyncEventStore(postgres_url) as store:
        await store.append_to_stream(
            "s", ANY_VERSION, [EventData("E", {"i": i}) for i in range(2000)]
        )
        backend: Any = store._backend
        read_stream, calls = backend.read_stream, 0

        async def counting_read_stream(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            return await read_stream(*args, **kwargs)

        backend.read_stream = counting_read_stream
        try:
            for _ in range(20):
                latest = store.stream_backward("s")  # pages of 1,000
                assert (await anext(latest)).event_number == 2000
                await latest.aclose()  # type: ignore[attr-defined]
        finally:
            backend.read_stream = read_stream
    assert calls == 20  # no page read ahead, none cancelled
