"""Creating, initialising, migrating, dropping and resetting a store's schema.

Every step that changes the schema runs in one transaction holding a per-schema advisory
lock (:meth:`Sql.lock_migrations`), so concurrent ``init``/``migrate``/``open`` calls on one
schema queue up: the first does the work, the others find it done. Each function returns a
one-line message saying what happened.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg

from evstore.backends.postgres._errors import translated
from evstore.backends.postgres._sql import SCHEMA_VERSION, Sql, quote_ident
from evstore.errors import ConfigurationError

__all__ = [
    "create_database",
    "database_name",
    "drop_schema",
    "initialise",
    "migrate",
    "reset",
    "schema_version",
]

MAINTENANCE_DATABASE = "postgres"

_MIGRATIONS: dict[int, Callable[[Sql], list[str]]] = {
    1: Sql.migration_1,
    2: Sql.migration_2,
    3: Sql.migration_3,
    4: Sql.migration_4,
}
"""Schema version -> the statements that bring the previous version to it."""


def database_name(dsn: str) -> str:
    """The database a DSN names, resolved the way libpq does (path, ``dbname``, env, user)."""
    parts = urlsplit(dsn)
    name = unquote(parts.path.lstrip("/"))
    if not name:
        query = parse_qs(parts.query)
        name = (query.get("dbname") or query.get("database") or [""])[0]
    if not name:
        name = os.environ.get("PGDATABASE", "")
    if not name:
        user = unquote(parts.username or "") or os.environ.get("PGUSER") or getpass.getuser()
        name = user
    return name


async def create_database(dsn: str, sql: Sql, connect_options: dict[str, Any]) -> str:
    """Create the database (through the ``postgres`` maintenance database) and the schema."""
    name = database_name(dsn)
    with translated(f"creating database {name!r}"):
        admin = await asyncpg.connect(dsn, database=MAINTENANCE_DATABASE, **connect_options)
        try:
            exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if exists:
                database_done = f'The database "{name}" already exists'
            else:
                try:
                    await admin.execute(f"CREATE DATABASE {quote_ident(name)}")
                    database_done = f'The database "{name}" has been created'
                except asyncpg.DuplicateDatabaseError:  # created concurrently
                    database_done = f'The database "{name}" already exists'
        finally:
            await admin.close()
        conn = await asyncpg.connect(dsn, **connect_options)
        try:
            schema_exists = await conn.fetchval(
                "SELECT 1 FROM pg_namespace WHERE nspname = $1", sql.schema
            )
            if schema_exists:
                schema_done = f'the schema "{sql.schema}" already exists.'
            else:
                await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {sql.s}")
                schema_done = f'the schema "{sql.schema}" has been created.'
        finally:
            await conn.close()
    return f"{database_done}; {schema_done}"


async def schema_version(conn: Any, sql: Sql) -> int | None:
    """The recorded schema version, or ``None`` when the schema is not initialised."""
    if not await conn.fetchval(sql.migrations_table_exists()):
        return None
    version: int | None = await conn.fetchval(sql.current_version())
    return version


async def _upgrade(conn: Any, sql: Sql) -> tuple[int | None, int]:
    """Under the migration lock: apply what is missing. Returns (version before, after)."""
    await conn.execute(sql.lock_migrations())
    before = await schema_version(conn, sql)
    if before is not None and before > SCHEMA_VERSION:
        raise ConfigurationError(
            f'schema "{sql.schema}" is at version {before}, newer than this evstore '
            f"understands ({SCHEMA_VERSION}); upgrade evstore"
        )
    if before is None:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {sql.s}")
        await conn.execute(sql.create_migrations_table())
    current = before or 0
    for version in range(current + 1, SCHEMA_VERSION + 1):
        for statement in _MIGRATIONS[version](sql):
            await conn.execute(statement)
        await conn.execute(sql.record_migration(), version)
    if current < SCHEMA_VERSION:
        # Functions are code: after any migration they are the current ones.
        for statement in sql.functions():
            await conn.execute(statement)
    return before, SCHEMA_VERSION


async def initialise(conn: Any, sql: Sql) -> str:
    """Create the tables when the schema has none (idempotent)."""
    with translated(f"initialising schema {sql.schema!r}"):
        async with conn.transaction():
            before, after = await _upgrade(conn, sql)
    if before is None:
        return f'The evstore schema "{sql.schema}" has been initialised (version {after}).'
    if before < after:
        return (
            f'The evstore schema "{sql.schema}" was already initialised; '
            f"it has been migrated from version {before} to {after}."
        )
    return f'The evstore schema "{sql.schema}" was already initialised (version {after}).'


async def migrate(conn: Any, sql: Sql) -> str:
    """Bring the schema to :data:`SCHEMA_VERSION`; concurrent runs wait, then find it done."""
    with translated(f"migrating schema {sql.schema!r}"):
        async with conn.transaction():
            before, after = await _upgrade(conn, sql)
    if before == after:
        return f'The evstore schema "{sql.schema}" is already migrated (version {after}).'
    start = "an empty schema" if before is None else f"version {before}"
    return f'The evstore schema "{sql.schema}" has been migrated from {start} to version {after}.'


async def drop_schema(conn: Any, sql: Sql) -> str:
    """Drop evstore's tables and functions, and the schema itself unless it is ``public``.

    A non-public schema that still holds other objects is kept (never dropped with
    CASCADE: those objects are not evstore's). The database is never dropped.
    """
    with translated(f"dropping schema {sql.schema!r}"):
        async with conn.transaction():
            await conn.execute(sql.lock_migrations())
            had_tables = await conn.fetchval(sql.migrations_table_exists())
            for statement in sql.drop_objects():
                await conn.execute(statement)
            schema_exists = await conn.fetchval(
                "SELECT 1 FROM pg_namespace WHERE nspname = $1", sql.schema
            )
            schema_dropped = schema_kept = False
            if sql.schema != "public" and schema_exists:
                try:
                    async with conn.transaction():  # a savepoint: a refusal keeps the drops
                        await conn.execute(f"DROP SCHEMA {sql.s}")
                    schema_dropped = True
                except asyncpg.DependentObjectsStillExistError:
                    schema_kept = True
    tables = (
        f'The evstore tables of schema "{sql.schema}" have been dropped'
        if had_tables
        else f'Schema "{sql.schema}" had no evstore tables'
    )
    if schema_dropped:
        return f"{tables}; the schema has been dropped too."
    if schema_kept:
        return f"{tables}; the schema was kept because it holds other objects."
    return f"{tables}."


async def reset(conn: Any, sql: Sql) -> str:
    """Delete every stream, event, position, snapshot, subscription and parked event; keep
    the tables."""
    with translated(f"resetting schema {sql.schema!r}"):
        async with conn.transaction():
            version = await schema_version(conn, sql)
            if version is None:
                raise ConfigurationError(
                    f'schema "{sql.schema}" is not initialised; run `evstore init` first'
                )
            if version != SCHEMA_VERSION:  # the tables to empty are this version's
                raise ConfigurationError(
                    f'schema "{sql.schema}" is at version {version}, this evstore needs '
                    f"{SCHEMA_VERSION}; run `evstore migrate` first"
                )
            for statement in sql.reset():
                await conn.execute(statement)
    return (
        f'The evstore schema "{sql.schema}" has been reset: '
        "all streams, events, snapshots and subscriptions were deleted."
    )
