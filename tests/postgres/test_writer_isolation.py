"""One append's trouble stays its own: bad values, locked rows, a slow sequencer."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from evstore import (
    ANY_VERSION,
    AppendResult,
    AsyncEventStore,
    EventData,
    StorageError,
)
from evstore.backends.base import NewEvent


def _raw_event(event_type: str) -> NewEvent:
    return NewEvent(uuid.uuid4(), event_type, b"{}", None, 0, None, None)


async def test_writer_value_refused_by_server_fails_only_its_own_append(
    postgres_url: str,
) -> None:
    async with AsyncEventStore(postgres_url) as store:
        backend: Any = store._backend
        now = datetime.now(UTC)
        # A NUL in text is refused by the server while it reads the parameters, which
        # aborts the whole batch transaction; the façade would refuse it earlier, so the
        # backend is driven directly to show the writer's own isolation.
        good = [backend.append(f"good-{i}", ANY_VERSION, [_raw_event("E")], now) for i in range(20)]
        bad = backend.append("bad", ANY_VERSION, [_raw_event("bad\x00type")], now)
        outcomes = await asyncio.gather(*good, bad, return_exceptions=True)

        assert all(isinstance(result, AppendResult) for result in outcomes[:20]), outcomes
        assert isinstance(outcomes[20], StorageError)
        assert len(await store.read_all_streams_forward()) == 20


async def test_writer_locked_stream_does_not_slow_other_appends(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    async with AsyncEventStore(postgres_url, pool_size=3) as store:
        await store.append_to_stream("locked", ANY_VERSION, [EventData("E", 0)])
        transaction = raw_conn.transaction()
        await transaction.start()
        try:
            # Someone else's open transaction holds the stream row of "locked".
            await store.append_to_stream(
                "locked", ANY_VERSION, [EventData("E", "in caller tx")], conn=raw_conn
            )
            blocked = asyncio.create_task(
                store.append_to_stream("locked", ANY_VERSION, [EventData("E", "waits")])
            )

            async def other(index: int) -> None:
                for n in range(25):
                    await store.append_to_stream(f"free-{index}", ANY_VERSION, [EventData("E", n)])

            started = time.perf_counter()
            await asyncio.wait_for(asyncio.gather(*(other(i) for i in range(20))), 30)
            elapsed = time.perf_counter() - started
            # With the blocked append retried inside every batch, each of the ~25 rounds
            # waited 100 ms for the lock (about 5 s); alone in the slow lane it costs nothing.
            assert elapsed < 2.0, f"500 unrelated appends took {elapsed:.2f} s"
            assert not blocked.done()
        finally:
            await transaction.commit()
        result = await asyncio.wait_for(blocked, 10)
        assert result.stream_version == 3


async def test_append_committed_while_sequencer_is_held_returns_without_position(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    async with AsyncEventStore(postgres_url, timeout=1) as store:
        await store.append_to_stream("s", ANY_VERSION, [EventData("E", 1)])
        backend: Any = store._backend
        transaction = raw_conn.transaction()
        await transaction.start()
        try:
            # Another session holds the sequencer lock (a stuck sequencer elsewhere).
            await raw_conn.execute(backend._sql.lock_sequencer())
            result = await store.append_to_stream("s", 1, [EventData("E", 2)])
        finally:
            await transaction.rollback()

        # The write happened: it is reported as a success, without its position...
        assert result == AppendResult(2, None)
        # ...and it gets its position once the sequencer is free again: the next append
        # returns only after a cycle numbered its own event, and a cycle numbers every
        # committed event still without a position.
        after = await store.append_to_stream("t", ANY_VERSION, [EventData("E", 3)])
        assert after.position == 3
        events = await store.read_stream_forward("s")
        assert [e.stream_version for e in events] == [1, 2]
        assert [e.position for e in events] == [1, 2]


def test_writer_runs_a_batch_again_only_when_the_server_refused_it() -> None:
    from asyncpg import exceptions

    from evstore.backends.postgres.writer import refused

    # The statement was refused and rolled back: running each append again is safe.
    for error in (
        exceptions.UniqueViolationError("duplicate key"),
        exceptions.LockNotAvailableError("lock timeout"),
        exceptions.CharacterNotInRepertoireError("bad text"),
        exceptions.QueryCanceledError("canceling statement"),
    ):
        assert refused(error), error
    # The connection ended under it: it may have committed, so it is not run again (the
    # appends would meet their own stored ids and be reported as duplicates).
    for error in (
        exceptions.ConnectionDoesNotExistError("connection was closed"),
        exceptions.ConnectionFailureError("connection failure"),
        exceptions.AdminShutdownError("terminating connection"),
        exceptions.CrashShutdownError("server crash"),
    ):
        assert not refused(error), error
