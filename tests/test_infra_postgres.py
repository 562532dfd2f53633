"""Tests of the test infrastructure itself: the PostgreSQL and SQLite fixtures.

Every backend test builds on these fixtures, so they are checked on their own: a broken
fixture otherwise shows up as hundreds of confusing backend failures.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from ._postgres import DATABASE_PREFIX, ENV_VAR, TestDatabases, run_sync

_USER_RELATIONS = """
    SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
"""


async def _database_exists(server_url: str, name: str) -> bool:
    conn = await asyncpg.connect(server_url)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def test_postgres_url_is_a_new_empty_database(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        name = await conn.fetchval("SELECT current_database()")
        assert name.startswith(DATABASE_PREFIX)
        assert await conn.fetchval(_USER_RELATIONS) == 0
        assert await conn.fetchval("SHOW server_encoding") == "UTF8"
        await conn.execute("CREATE TABLE t (x int)")  # the test owns it: DDL is allowed
    finally:
        await conn.close()


async def test_postgres_dsn_factory_gives_distinct_databases(
    postgres_dsn_factory: Callable[[], str],
) -> None:
    # Called inside a running event loop on purpose: the factory must not need its own.
    first, second = postgres_dsn_factory(), postgres_dsn_factory()
    assert first != second
    conn1, conn2 = await asyncpg.connect(first), await asyncpg.connect(second)
    try:
        await conn1.execute("CREATE TABLE only_in_first (x int)")
        assert await conn2.fetchval(_USER_RELATIONS) == 0
        names = {await c.fetchval("SELECT current_database()") for c in (conn1, conn2)}
        assert len(names) == 2
    finally:
        await conn1.close()
        await conn2.close()


async def test_postgres_databases_drop_disconnects_sessions_and_removes_database(
    postgres_server_url: str,
) -> None:
    databases = TestDatabases(postgres_server_url)
    url = databases.create()
    conn = await asyncpg.connect(url)  # left open on purpose: drop must terminate it
    try:
        databases.drop(url)
        assert not await _alive(conn)
    finally:
        conn.terminate()
    name = urlsplit(url).path.lstrip("/")
    assert not await _database_exists(postgres_server_url, name)


async def _alive(conn: asyncpg.Connection) -> bool:
    try:
        await conn.fetchval("SELECT 1")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError, OSError):
        return False
    return True


def test_postgres_databases_refuse_to_drop_what_they_did_not_create(
    postgres_server_url: str,
) -> None:
    databases = TestDatabases(postgres_server_url)
    for name in ("postgres", "template1", DATABASE_PREFIX + "0123456789abcdef"):
        with pytest.raises(ValueError, match="refusing to drop"):
            databases.drop(name)


def test_postgres_url_is_dropped_after_its_test(
    postgres_server_url: str, _postgres_databases: TestDatabases
) -> None:
    # Exercise the fixture's own create/drop pair through the registry it uses.
    url = _postgres_databases.create()
    name = urlsplit(url).path.lstrip("/")
    _postgres_databases.drop(url)
    assert not run_sync(_database_exists(postgres_server_url, name))


@pytest.mark.skipif(bool(os.environ.get(ENV_VAR)), reason="checks the embedded server")
async def test_embedded_postgres_listens_on_tcp_and_does_not_run_as_root(
    postgres_server_url: str,
) -> None:
    assert urlsplit(postgres_server_url).hostname == "127.0.0.1"
    conn = await asyncpg.connect(postgres_server_url)
    try:
        assert int(await conn.fetchval("SHOW server_version_num")) >= 170000
        assert await conn.fetchval("SHOW fsync") == "off"
        data_directory = await conn.fetchval("SHOW data_directory")
    finally:
        await conn.close()
    assert os.stat(data_directory).st_uid != 0  # PostgreSQL refuses to run as root


def test_sqlite_path_is_a_fresh_file_in_a_private_directory(sqlite_path: Path) -> None:
    assert sqlite_path.name == "events.db"
    assert sqlite_path.parent.is_dir()
    assert not sqlite_path.exists()
