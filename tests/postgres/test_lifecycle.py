"""create / init / migrate / drop / reset / schema_version, and how failures surface."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from evstore import (
    NO_STREAM,
    AsyncEventStore,
    ConfigurationError,
    EventData,
    EventStoreTimeoutError,
    StorageError,
)
from evstore.backends.postgres._sql import SCHEMA_VERSION, Sql

from . import _old_schema


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@pytest.fixture
async def missing_database_url(postgres_url: str) -> AsyncIterator[str]:
    """URL of a database that does not exist yet; dropped afterwards if a test created it."""
    name = f"evstore_pgcreate_{secrets.token_hex(6)}"
    yield _with_database(postgres_url, name)
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_lifecycle_create_makes_database_and_schema_once(missing_database_url: str) -> None:
    assert await AsyncEventStore.schema_version(missing_database_url) is None
    with pytest.raises(StorageError, match="evstore create") as caught:
        await AsyncEventStore(missing_database_url).open()
    assert isinstance(caught.value.__cause__, asyncpg.InvalidCatalogNameError)

    message = await AsyncEventStore.create(missing_database_url, schema="tenant")
    assert message == (
        f'The database "{urlsplit(missing_database_url).path[1:]}" has been created; '
        'the schema "tenant" has been created.'
    )
    again = await AsyncEventStore.create(missing_database_url, schema="tenant")
    assert "already exists; the schema" in again and again.endswith("already exists.")
    async with AsyncEventStore(missing_database_url, schema="tenant") as store:
        assert (await store.append_to_stream("s", NO_STREAM, [EventData("E", 1)])).position == 1


async def test_lifecycle_init_is_idempotent_and_records_the_version(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    assert await AsyncEventStore.schema_version(postgres_url) is None
    first = await AsyncEventStore.init(postgres_url)
    assert first == f'The evstore schema "public" has been initialised (version {SCHEMA_VERSION}).'
    second = await AsyncEventStore.init(postgres_url)
    assert second == (
        f'The evstore schema "public" was already initialised (version {SCHEMA_VERSION}).'
    )
    assert await AsyncEventStore.schema_version(postgres_url) == str(SCHEMA_VERSION)
    assert await raw_conn.fetchval("SELECT count(*) FROM schema_migrations") == SCHEMA_VERSION


async def test_lifecycle_three_concurrent_migrations_run_once(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    # Each call opens its own connection, so the three really race in the database.
    messages = await asyncio.gather(
        *(AsyncEventStore.migrate(postgres_url, schema="racing") for _ in range(3))
    )
    migrated = [m for m in messages if "has been migrated from an empty schema" in m]
    already = [m for m in messages if "is already migrated" in m]
    assert (len(migrated), len(already)) == (1, 2), messages
    rows = await raw_conn.fetch("SELECT version FROM racing.schema_migrations")
    assert [r[0] for r in rows] == list(range(1, SCHEMA_VERSION + 1))
    assert await AsyncEventStore.migrate(postgres_url, schema="racing") == (
        f'The evstore schema "racing" is already migrated (version {SCHEMA_VERSION}).'
    )


async def test_lifecycle_migrate_upgrades_a_version_1_schema(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    sql = Sql("public")
    async with raw_conn.transaction():
        await raw_conn.execute(sql.create_migrations_table())
        for statement in sql.migration_1():
            await raw_conn.execute(statement)
        await raw_conn.execute(sql.record_migration(), 1)
    with pytest.raises(ConfigurationError, match="evstore migrate"):
        await AsyncEventStore(postgres_url).open()

    message = await AsyncEventStore.migrate(postgres_url)

    assert f"version {SCHEMA_VERSION}" in message
    assert await AsyncEventStore.schema_version(postgres_url) == str(SCHEMA_VERSION)
    async with AsyncEventStore(postgres_url) as store:
        result = await store.append_to_stream("s", NO_STREAM, [EventData("E", 1)])
    assert result.position == 1


async def test_lifecycle_migration_to_version_4_keeps_events_positions_and_links(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    # A version-3 store: numbered events, links (one to an event hard deleted since), and
    # an event committed but not numbered yet (its writer died before a sequencer cycle).
    await _old_schema.build(raw_conn, Sql("public"), 3)
    s = await _old_schema.add_stream(raw_conn, "s")
    first, first_seq = await _old_schema.add_event(raw_conn, s, b'{"n": 1}', position=1)
    second, second_seq = await _old_schema.add_event(raw_conn, s, b'{"n": 2}', position=2)
    linked = await _old_schema.add_stream(raw_conn, "linked")
    await _old_schema.add_link(raw_conn, linked, second_seq)
    await _old_schema.add_link(raw_conn, linked, 999)  # its event is gone
    await _old_schema.add_link(raw_conn, linked, first_seq)
    late = await _old_schema.add_stream(raw_conn, "late")
    unnumbered, _ = await _old_schema.add_event(raw_conn, late, b'{"n": 3}', position=None)

    message = await AsyncEventStore.migrate(postgres_url)

    assert message.endswith(f"has been migrated from version 3 to version {SCHEMA_VERSION}.")
    assert await raw_conn.fetchval("SELECT to_regclass('public.all_positions')") is None
    async with AsyncEventStore(postgres_url) as store:
        events = await store.read_stream_forward("s")
        assert [(e.event_id, e.data, e.position) for e in events] == [
            (first, {"n": 1}, 1),
            (second, {"n": 2}, 2),
        ]
        links = await store.read_stream_forward("linked")
        assert [(e.event_number, e.event_id, e.stream_id) for e in links] == [
            (1, second, "s"),
            (3, first, "s"),
        ]
        # The unnumbered event gets the next position at the first cycle, new appends follow.
        result = await store.append_to_stream("new", NO_STREAM, [EventData("E", 4)])
        assert result.position == 4
        everything = await store.read_all_streams_forward()
        assert [(e.event_id, e.position) for e in everything[:3]] == [
            (first, 1),
            (second, 2),
            (unnumbered, 3),
        ]
        assert (await store.stream_info("$all")).stream_version == 4


async def test_lifecycle_open_without_auto_init_refuses_an_empty_schema(postgres_url: str) -> None:
    with pytest.raises(ConfigurationError, match="evstore init"):
        await AsyncEventStore(postgres_url, auto_init=False).open()
    assert await AsyncEventStore.schema_version(postgres_url) is None
    await AsyncEventStore.init(postgres_url)
    async with AsyncEventStore(postgres_url, auto_init=False) as store:
        await store.append_to_stream("s", NO_STREAM, [EventData("E", 1)])


async def test_lifecycle_reset_empties_everything_and_restarts_positions(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    async with AsyncEventStore(postgres_url) as store:
        await store.append_to_stream("s", NO_STREAM, [EventData("E", 1), EventData("E", 2)])
        await store.link_to_stream("l", NO_STREAM, await store.read_stream_forward("s"))
        message = await AsyncEventStore.reset(postgres_url)
        assert message.startswith('The evstore schema "public" has been reset')
        assert await store.read_all_streams_forward() == []
        assert (await store.stream_info("$all")).stream_version == 0
        assert [s.stream_id for s in (await store.paginate_streams()).entries] == ["$all"]
        result = await store.append_to_stream("s", NO_STREAM, [EventData("E", 3)])
        assert (result.stream_version, result.position) == (1, 1)
    for table in ("links", "events", "streams", "snapshots", "subscriptions", "parked_events"):
        assert await raw_conn.fetchval(f"SELECT to_regclass('public.{table}') IS NOT NULL")


async def test_lifecycle_drop_removes_tables_and_schema_but_never_the_database(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    await AsyncEventStore.init(postgres_url, schema="tenant")
    await AsyncEventStore.init(postgres_url)
    message = await AsyncEventStore.drop(postgres_url, schema="tenant")
    assert message == (
        'The evstore tables of schema "tenant" have been dropped; the schema has been dropped too.'
    )
    assert not await raw_conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = 'tenant'")
    assert await AsyncEventStore.drop(postgres_url) == (
        'The evstore tables of schema "public" have been dropped.'
    )
    assert (
        await raw_conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
    )
    assert (
        await raw_conn.fetchval("SELECT count(*) FROM pg_proc WHERE proname LIKE 'evstore%'") == 0
    )
    assert await AsyncEventStore.schema_version(postgres_url) is None
    assert await raw_conn.fetchval("SELECT current_database()")  # still there


async def test_lifecycle_drop_keeps_a_schema_holding_other_objects(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    await AsyncEventStore.init(postgres_url, schema="shared")
    await raw_conn.execute("CREATE TABLE shared.mine (n int)")
    message = await AsyncEventStore.drop(postgres_url, schema="shared")
    assert message.endswith("the schema was kept because it holds other objects.")
    assert await raw_conn.fetchval("SELECT to_regclass('shared.mine') IS NOT NULL")
    assert await raw_conn.fetchval("SELECT to_regclass('shared.events') IS NULL")


async def test_lifecycle_column_type_mismatch_is_refused(postgres_url: str) -> None:
    await AsyncEventStore.init(postgres_url)
    with pytest.raises(ConfigurationError, match="stores payloads as bytea"):
        await AsyncEventStore(postgres_url, column_data_type="jsonb").open()


async def test_errors_driver_failures_become_storage_errors_chained(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    async with AsyncEventStore(postgres_url) as store:
        await store.append_to_stream("s", NO_STREAM, [EventData("E", 1)])
        await raw_conn.execute("DROP TABLE links")
        with pytest.raises(StorageError) as caught:
            await store.read_stream_forward("s")
        assert isinstance(caught.value.__cause__, asyncpg.UndefinedTableError)


async def test_errors_lock_waits_past_the_timeout_raise_timeout_errors(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    async with AsyncEventStore(postgres_url, timeout=0.5) as store:
        await store.append_to_stream("s", NO_STREAM, [EventData("E", 1)])
        async with raw_conn.transaction():
            await raw_conn.execute("SELECT * FROM streams WHERE stream_id = 's' FOR UPDATE")
            with pytest.raises(EventStoreTimeoutError):
                await store.delete_stream("s", 1)
            with pytest.raises(EventStoreTimeoutError):
                await store.append_to_stream("s", 1, [EventData("E", 2)])
        # Once the lock is gone the store works again; the timed-out append was not written.
        assert [e.data for e in await store.read_stream_forward("s")] == [1]
        await store.delete_stream("s", 1)
