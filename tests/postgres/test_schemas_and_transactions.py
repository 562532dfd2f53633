"""Schemas isolate stores; ``conn=`` runs operations inside the caller's transaction."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from evstore import (
    NO_STREAM,
    AsyncEventStore,
    ConfigurationError,
    EventData,
    StreamDeletedError,
    StreamNotFoundError,
)


async def test_schemas_two_stores_on_one_database_are_isolated(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    # A mixed-case name only works if every statement quotes it.
    async with (
        AsyncEventStore(postgres_url, schema="tenant_a") as a,
        AsyncEventStore(postgres_url, schema="Tenant_B") as b,
    ):
        await a.append_to_stream("orders", NO_STREAM, [EventData("E", "a1"), EventData("E", "a2")])
        result = await b.append_to_stream("orders", NO_STREAM, [EventData("E", "b1")])
        assert result.position == 1
        await b.append_to_stream("only-b", NO_STREAM, [EventData("E", "b2")])
        assert [e.data for e in await a.read_stream_forward("orders")] == ["a1", "a2"]
        assert [e.data for e in await b.read_all_streams_forward()] == ["b1", "b2"]
        with pytest.raises(StreamNotFoundError):
            await a.read_stream_forward("only-b")
        assert (await a.stream_info("$all")).stream_version == 2
        listed = await b.paginate_streams()
        assert [s.stream_id for s in listed.entries] == ["$all", "orders", "only-b"]
    await AsyncEventStore.drop(postgres_url, schema="Tenant_B")
    schemas = await raw_conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname ILIKE 'tenant%'")
    assert [r[0] for r in schemas] == ["tenant_a"]
    async with AsyncEventStore(postgres_url, schema="tenant_a") as a:
        assert len(await a.read_all_streams_forward()) == 2


@pytest.mark.parametrize(
    "schema", ['public"; DROP TABLE streams; --', "a b", "1abc", "x" * 64, "tenant-a", ""]
)
async def test_schemas_injection_and_invalid_names_are_refused(
    postgres_url: str, raw_conn: asyncpg.Connection, schema: str
) -> None:
    before = await raw_conn.fetchval("SELECT count(*) FROM pg_namespace")
    with pytest.raises(ConfigurationError, match="schema"):
        AsyncEventStore(postgres_url, schema=schema)
    with pytest.raises(ConfigurationError, match="schema"):
        await AsyncEventStore.init(postgres_url, schema=schema)
    assert await raw_conn.fetchval("SELECT count(*) FROM pg_namespace") == before


async def test_transactions_rolled_back_append_leaves_nothing(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    async with AsyncEventStore(postgres_url) as store:
        async with raw_conn.transaction():
            await raw_conn.execute("CREATE TABLE outbox (n int)")
        transaction = raw_conn.transaction()
        await transaction.start()
        result = await store.append_to_stream(
            "order-1", NO_STREAM, [EventData("E", 1), EventData("E", 2)], conn=raw_conn
        )
        assert (result.stream_version, result.position) == (2, None)
        await raw_conn.execute("INSERT INTO outbox VALUES (1)")
        # Inside the transaction the caller sees its stream; nobody else does.
        assert (await store.stream_info("order-1", conn=raw_conn)).stream_version == 2
        with pytest.raises(StreamNotFoundError):
            await store.stream_info("order-1")
        await transaction.rollback()
        with pytest.raises(StreamNotFoundError):
            await store.read_stream_forward("order-1")
        assert await store.read_all_streams_forward() == []
        assert await raw_conn.fetchval("SELECT count(*) FROM outbox") == 0
        # Nothing was left behind for the sequencer either: the next event is position 1.
        after = await store.append_to_stream("order-2", NO_STREAM, [EventData("E", 3)])
        assert after.position == 1


async def test_transactions_committed_append_gets_positions_after_commit(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    async with AsyncEventStore(postgres_url) as store:
        async with raw_conn.transaction():
            await store.append_to_stream("s", NO_STREAM, [EventData("E", 1)], conn=raw_conn)
            # Reads on the caller's connection see only events that have positions.
            assert await store.read_stream_forward("s", conn=raw_conn) == []
        # The append did not wait, so its position comes from a later (poll) cycle.
        deadline = time.monotonic() + 10
        while not (events := await store.read_stream_forward("s")) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert [(e.stream_version, e.position) for e in events] == [(1, 1)]
        assert [e.position for e in await store.read_all_streams_forward(conn=raw_conn)] == [1]


async def test_transactions_rolled_back_link_leaves_nothing(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    async with AsyncEventStore(postgres_url) as store:
        await store.append_to_stream("source", NO_STREAM, [EventData("E", 1), EventData("E", 2)])
        events = await store.read_stream_forward("source")
        await store.link_to_stream("target", NO_STREAM, [events[0]])
        transaction = raw_conn.transaction()
        await transaction.start()
        result = await store.link_to_stream("fresh", NO_STREAM, events, conn=raw_conn)
        assert result.stream_version == 2
        await store.link_to_stream("target", 1, [events[1]], conn=raw_conn)
        assert (await store.stream_info("target", conn=raw_conn)).stream_version == 2
        await transaction.rollback()
        with pytest.raises(StreamNotFoundError):
            await store.read_stream_forward("fresh")
        linked = await store.read_stream_forward("target")
        assert [(e.event_number, e.stream_id, e.stream_version) for e in linked] == [
            (1, "source", 1)
        ]
        assert (await store.stream_info("target")).stream_version == 1


async def test_transactions_rolled_back_delete_keeps_the_stream(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    async with AsyncEventStore(postgres_url, enable_hard_deletes=True) as store:
        await store.append_to_stream("s", NO_STREAM, [EventData("E", 1)])
        for hard in (False, True):
            transaction = raw_conn.transaction()
            await transaction.start()
            await store.delete_stream("s", 1, hard=hard, conn=raw_conn)
            expected = StreamNotFoundError if hard else StreamDeletedError
            with pytest.raises(expected):
                await store.read_stream_forward("s", conn=raw_conn)
            await transaction.rollback()
            assert [e.data for e in await store.read_stream_forward("s")] == [1]
