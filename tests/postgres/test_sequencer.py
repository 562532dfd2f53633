"""Global positions: assigned after commit, contiguous, never out of order, never stalled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from evstore import ANY_VERSION, NO_STREAM, AsyncEventStore, EventData, RecordedEvent


async def _until(condition: Callable[[], bool], *, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def _read_all_until(
    store: AsyncEventStore, count: int, *, within: float = 10.0
) -> list[RecordedEvent]:
    """$all once it holds ``count`` events (polled: positions come from a later cycle)."""
    deadline = time.monotonic() + within
    while True:
        events = await store.read_all_streams_forward(0, 10_000)
        if len(events) >= count or time.monotonic() > deadline:
            return events
        await asyncio.sleep(0.01)


async def test_sequencer_a_lone_append_is_numbered_in_its_own_transaction(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    async with AsyncEventStore(postgres_url, poll_interval=30) as store:
        sequencer: Any = store._backend._sequencer  # type: ignore[attr-defined]
        results = [await store.append_to_stream("s", i, [EventData("E", i)]) for i in range(20)]
        assert [r.position for r in results] == list(range(1, 21))
        # No sequencer cycle was needed: each append numbered its event as it stored it,
        # so none was ever stored without a position (those carry their writer's xid).
        assert sequencer.cycles == 0
        assert await raw_conn.fetchval("SELECT count(*) FROM events WHERE xid IS NOT NULL") == 0
        assert [e.position for e in await store.read_all_streams_forward()] == list(range(1, 21))


async def test_sequencer_open_unrelated_transaction_does_not_hold_positions_back(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    await raw_conn.execute("CREATE TABLE scratch (n int)")
    async with AsyncEventStore(postgres_url) as store:
        transaction = raw_conn.transaction()
        await transaction.start()
        await raw_conn.execute("INSERT INTO scratch VALUES (1)")
        open_xid = await raw_conn.fetchval("SELECT pg_current_xact_id()")
        async with store._backend._pool.acquire() as other:  # type: ignore[attr-defined]
            xmin = await other.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())")
        assert xmin <= open_xid  # the open transaction really holds the horizon back
        result = await asyncio.wait_for(
            store.append_to_stream("s", NO_STREAM, [EventData("E", 1)]), 5
        )
        assert result.position == 1
        assert [e.position for e in await store.read_all_streams_forward()] == [1]
        await transaction.rollback()


async def test_sequencer_open_append_transaction_gets_later_positions_once_committed(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    async with AsyncEventStore(postgres_url) as store:
        transaction = raw_conn.transaction()
        await transaction.start()
        # This transaction takes its xid first, so it is the oldest writer from here on.
        late = await store.append_to_stream(
            "late", NO_STREAM, [EventData("E", "late")], conn=raw_conn
        )
        assert late.position is None
        early = [
            await store.append_to_stream(f"early-{i}", NO_STREAM, [EventData("E", i)])
            for i in range(5)
        ]
        assert [r.position for r in early] == [1, 2, 3, 4, 5]
        # Stream order across the two transactions: "shared" v1 from a younger transaction,
        # v2 from the old one once it can lock the row.
        first = await store.append_to_stream("shared", NO_STREAM, [EventData("E", "v1")])
        assert first.position == 6
        await store.append_to_stream("shared", 1, [EventData("E", "v2")], conn=raw_conn)
        passed = await store.read_all_streams_forward(0, 100)
        assert [e.position for e in passed] == [1, 2, 3, 4, 5, 6]
        await transaction.commit()

        events = await _read_all_until(store, 8)
        assert [e.position for e in events] == list(range(1, 9))
        assert [e.stream_id for e in events[6:]] == ["late", "shared"]
        shared = await store.read_stream_forward("shared")
        assert [(e.stream_version, e.position) for e in shared] == [(1, 6), (2, 8)]


async def test_sequencer_two_stores_in_one_process_number_contiguously(postgres_url: str) -> None:
    async with AsyncEventStore(postgres_url) as one, AsyncEventStore(postgres_url) as two:

        async def appender(store: AsyncEventStore, name: str) -> list[int | None]:
            results = []
            for i in range(30):
                result = await store.append_to_stream(name, ANY_VERSION, [EventData("E", i)] * 1)
                results.append(result.position)
            return results

        reported = await asyncio.gather(
            *(
                appender(store, f"{label}-{i}")
                for i in range(5)
                for label, store in (("a", one), ("b", two))
            )
        )
        positions = sorted(p for results in reported for p in results if p is not None)
        assert positions == list(range(1, 301))
        assert [e.position for e in await two.read_all_streams_forward(0, 1000)] == positions


async def test_sequencer_last_position_survives_hard_deletes(postgres_url: str) -> None:
    async with AsyncEventStore(postgres_url, enable_hard_deletes=True) as store:
        await store.append_to_stream("keep", NO_STREAM, [EventData("E", 1)])
        await store.append_to_stream("gone", NO_STREAM, [EventData("E", 2), EventData("E", 3)])
        await store.delete_stream("gone", ANY_VERSION, hard=True)
        assert (await store.stream_info("$all")).stream_version == 3
        result = await store.append_to_stream("after", NO_STREAM, [EventData("E", 4)])
        assert result.position == 4
        assert [e.position for e in await store.read_all_streams_forward()] == [1, 4]


async def test_sequencer_conn_outside_a_transaction_returns_the_position(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    async with AsyncEventStore(postgres_url) as store:
        result = await store.append_to_stream("s", NO_STREAM, [EventData("E", 1)], conn=raw_conn)
        assert result.position == 1


async def test_sequencer_notifies_each_cycle_with_the_last_position(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    received: asyncio.Queue[str] = asyncio.Queue()
    await raw_conn.add_listener("public.evstore", lambda *args: received.put_nowait(args[3]))
    async with AsyncEventStore(postgres_url) as store:
        result = await store.append_to_stream(
            "s", NO_STREAM, [EventData("E", 1), EventData("E", 2)]
        )
        payload = await asyncio.wait_for(received.get(), 5)
        assert payload == str(result.position) == "2"


@pytest.mark.parametrize("notifications", [True, False])
async def test_sequencer_opens_no_listen_connection(
    postgres_url: str, raw_conn: asyncpg.Connection, notifications: bool
) -> None:
    async with AsyncEventStore(postgres_url, notifications=notifications) as store:
        await store.append_to_stream("s", NO_STREAM, [EventData("E", 1)])
        listening = await raw_conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND query ILIKE 'LISTEN%'"
        )
        assert listening == 0


async def test_sequencer_runs_on_the_session_mode_connection(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    async with AsyncEventStore(postgres_url, session_mode_url=postgres_url, pool_size=2) as store:
        backend: Any = store._backend
        transaction = raw_conn.transaction()
        await transaction.start()
        # With the sequencer lock held elsewhere the appends are stored without positions
        # and wait for a sequencer cycle, which runs on the session-mode connection.
        await raw_conn.execute(backend._sql.lock_sequencer())
        appends = asyncio.gather(
            *(store.append_to_stream(f"s-{i}", NO_STREAM, [EventData("E", i)]) for i in range(10))
        )
        await _until(lambda: backend._writer.appends == 10)
        await transaction.rollback()
        results = await asyncio.wait_for(appends, 10)
        assert sorted(r.position for r in results) == list(range(1, 11))
        session = backend._session_conn
        assert session is not None and not session.is_closed()


async def _unnumbered_event(store: AsyncEventStore, url: str, stream: str) -> None:
    """A committed event without a position (appended inside a caller's transaction; the
    store's poll interval is long, so no idle cycle numbers it meanwhile)."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await store.append_to_stream(stream, NO_STREAM, [EventData("E", stream)], conn=conn)
    finally:
        await conn.close()


async def test_sequencer_an_open_hard_delete_does_not_stop_numbering(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    async with AsyncEventStore(postgres_url, enable_hard_deletes=True, poll_interval=30) as store:
        await _unnumbered_event(store, postgres_url, "victim")
        transaction = raw_conn.transaction()
        await transaction.start()
        # The caller's transaction hard-deletes the stream and stays open: it holds the
        # row of the event no cycle has numbered yet.
        await store.delete_stream("victim", ANY_VERSION, hard=True, conn=raw_conn)
        appends = (
            store.append_to_stream(f"s-{i}", NO_STREAM, [EventData("E", i)]) for i in range(5)
        )
        results = await asyncio.wait_for(asyncio.gather(*appends), 5)
        # Numbered at once (the deleted stream's event is left for a later cycle), readable.
        assert sorted(r.position for r in results) == [1, 2, 3, 4, 5]  # type: ignore[type-var]
        assert [e.position for e in await store.read_all_streams_forward()] == [1, 2, 3, 4, 5]
        # An append inside the deleting transaction is numbered too (it used to wait for
        # its own transaction).
        inside = await asyncio.wait_for(
            store.append_to_stream("inside", NO_STREAM, [EventData("E", "in")]), 5
        )
        assert inside.position == 6
        await transaction.commit()
        after = await store.append_to_stream("after", NO_STREAM, [EventData("E", "after")])
        assert after.position == 7
        events = await store.read_all_streams_forward()
        assert [(e.stream_id, e.position) for e in events][-2:] == [("inside", 6), ("after", 7)]
        assert "victim" not in {e.stream_id for e in events}


async def test_sequencer_an_event_updated_while_it_is_numbered_is_not_lost(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    async with AsyncEventStore(postgres_url, poll_interval=30) as store:
        await _unnumbered_event(store, postgres_url, "scrubbed")
        transaction = raw_conn.transaction()
        await transaction.start()
        # Someone updates the event's row by hand (scrubbing data, say) in an open
        # transaction while the store numbers events.
        await raw_conn.execute(
            "UPDATE events SET data = $1 WHERE stream_version = 1 AND position IS NULL",
            b'"scrubbed again"',
        )
        first = await asyncio.wait_for(
            store.append_to_stream("other", NO_STREAM, [EventData("E", "other")]), 5
        )
        assert first.position == 1  # the locked event waits for a later cycle
        await transaction.commit()
        second = await store.append_to_stream("next", NO_STREAM, [EventData("E", "next")])
        # That cycle came with this append: the updated event got the next position.
        assert second.position == 3
        events = await store.read_all_streams_forward()
        assert [(e.stream_id, e.data) for e in events] == [
            ("other", "other"),
            ("scrubbed", "scrubbed again"),
            ("next", "next"),
        ]
