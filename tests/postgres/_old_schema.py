"""Stores at an earlier schema version, built the way that version stored its data.

Migrations only keep the table statements of earlier versions (functions are always the
current ones), so data of an old version is written here with plain SQL in that version's
table layout.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg

from evstore.backends.postgres._sql import Sql


async def build(conn: asyncpg.Connection, sql: Sql, version: int) -> None:
    """Create the tables of schema ``version`` and record it."""
    async with conn.transaction():
        await conn.execute(sql.create_migrations_table())
        for number in range(1, version + 1):
            for statement in getattr(sql, f"migration_{number}")():
                await conn.execute(statement)
            await conn.execute(sql.record_migration(), number)


async def add_stream(conn: asyncpg.Connection, stream_id: str) -> int:
    """A stream row (version 0); returns its key."""
    key: int = await conn.fetchval(
        "INSERT INTO streams (stream_id) VALUES ($1) RETURNING stream_key", stream_id
    )
    return key


async def add_event(
    conn: asyncpg.Connection, stream_key: int, data: bytes, *, position: int | None
) -> tuple[uuid.UUID, int]:
    """An event at the end of its stream, numbered at ``position`` (versions 1 to 3 kept
    positions in ``all_positions``) or not yet numbered; returns its id and seq."""
    event_id = uuid.uuid4()
    version = await conn.fetchval(
        "UPDATE streams SET version = version + 1 WHERE stream_key = $1 RETURNING version",
        stream_key,
    )
    seq: int = await conn.fetchval(
        "INSERT INTO events (event_id, stream_key, stream_version, event_type, data, "
        "created_at) VALUES ($1, $2, $3, 'E', $4, $5) RETURNING seq",
        event_id,
        stream_key,
        version,
        data,
        datetime.now(UTC),
    )
    if position is not None:
        await conn.execute(
            "INSERT INTO all_positions (position, seq) VALUES ($1, $2)", position, seq
        )
        await conn.execute(
            "UPDATE sequencer_state SET last_position = greatest(last_position, $1)", position
        )
    return event_id, seq


async def add_link(conn: asyncpg.Connection, stream_key: int, seq: int) -> None:
    """A link to the event with ``seq`` at the end of the stream (versions 1 to 3)."""
    version = await conn.fetchval(
        "UPDATE streams SET version = version + 1 WHERE stream_key = $1 RETURNING version",
        stream_key,
    )
    await conn.execute(
        "INSERT INTO links (stream_key, stream_version, seq) VALUES ($1, $2, $3)",
        stream_key,
        version,
        seq,
    )
