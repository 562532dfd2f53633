"""The physical limit on PostgreSQL: the same rows, written and read with bare asyncpg.

A minimal event table — global position, stream id, version, type, payload (``bytea``, as
evstore stores it by default), ``created_at`` — with the unique (stream, version) key that
optimistic concurrency needs and nothing else: no event ids, no stream table, no ordering
guarantee for ``$all`` readers. Each append is one statement, so one transaction: either a
multi-row ``INSERT … SELECT FROM unnest(…)`` or, separately, ``COPY``.

``raw unnest + ids`` is a reference beside the limit, not the limit: the same table and
statement with one more column, a unique random (version 4) event id per event, generated
the fastest way evstore knows. Every event store that refuses a repeated event id keeps
such a key; the reference shows, in the same run, what that key alone costs the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg

from evstore._ids import new_uuid4
from evstore.bench._data import EVENT_TYPE, PAYLOAD_BYTES, new_stream_id
from evstore.bench._timing import AsyncOperation
from evstore.bench.systems._base import AsyncTarget, Role

__all__ = ["RawPostgresTarget"]

COLUMNS = ("stream_id", "version", "type", "data", "created_at")
FILL_CHUNK = 10_000


class RawPostgresTarget(AsyncTarget):
    """Bare asyncpg on a table ``<schema>.events``; one pool connection per worker."""

    role: Role = "limit"

    def __init__(
        self,
        url: str,
        schema: str,
        *,
        method: Literal["unnest", "copy"],
        pool_size: int,
        create: bool = True,
        event_ids: bool = False,
    ) -> None:
        if event_ids and method != "unnest":
            raise ValueError("event ids are measured with the unnest method only")
        self.url = url
        self.schema = schema
        self.method = method
        self.event_ids = event_ids
        self.label = f"raw {method}" + (" + ids" if event_ids else "")
        if event_ids:
            self.role = "reference"
        self.pool_size = pool_size
        self.create = create
        self._pool: Any = None
        table = f'"{schema}".events'
        ids_column, ids_value, ids_array = (
            (", event_id", ", e", ", $6::uuid[]") if event_ids else ("", "", "")
        )
        self._insert = (
            f"INSERT INTO {table} ({', '.join(COLUMNS)}{ids_column}) "
            f"SELECT $1, v, t, d, $2{ids_value} "
            f"FROM unnest($3::bigint[], $4::text[], $5::bytea[]{ids_array}) "
            f"AS u(v, t, d{ids_value})"
        )
        self._read_stream = (
            f"SELECT position, stream_id, version, type, data, created_at FROM {table} "
            "WHERE stream_id = $1 ORDER BY version"
        )
        self._read_all = (
            f"SELECT position, stream_id, version, type, data, created_at FROM {table} "
            "WHERE position > $1 ORDER BY position LIMIT $2"
        )

    async def open(self) -> None:
        if self.create:
            await self._create_table()
        self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=self.pool_size)

    async def _create_table(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(
                f"""
                CREATE SCHEMA IF NOT EXISTS "{self.schema}";
                CREATE TABLE IF NOT EXISTS "{self.schema}".events (
                    position bigserial PRIMARY KEY,
                    stream_id text NOT NULL,
                    version bigint NOT NULL,
                    type text NOT NULL,
                    data bytea NOT NULL,
                    created_at timestamptz NOT NULL,
                    {"event_id uuid NOT NULL UNIQUE," if self.event_ids else ""}
                    UNIQUE (stream_id, version)
                )
                """
            )
        finally:
            await conn.close()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _write(self, conn: Any, stream: str, first: int, count: int) -> None:
        now = datetime.now(UTC)
        versions = list(range(first, first + count))
        if self.method == "unnest":
            ids = [[new_uuid4() for _ in range(count)]] if self.event_ids else []
            await conn.execute(
                self._insert,
                stream,
                now,
                versions,
                [EVENT_TYPE] * count,
                [PAYLOAD_BYTES] * count,
                *ids,
            )
        else:
            await conn.copy_records_to_table(
                "events",
                schema_name=self.schema,
                columns=COLUMNS,
                records=[(stream, v, EVENT_TYPE, PAYLOAD_BYTES, now) for v in versions],
            )

    def appender(self, size: int) -> AsyncOperation:
        pool = self._pool
        stream = new_stream_id()
        version = [0]

        async def append() -> None:
            async with pool.acquire() as conn:
                await self._write(conn, stream, version[0] + 1, size)
            version[0] += size

        return append

    def reader(self, stream: str) -> AsyncOperation:
        pool = self._pool
        query = self._read_stream

        async def read() -> None:
            async with pool.acquire() as conn:
                await conn.fetch(query, stream)

        return read

    async def fill(self, streams: Sequence[str], size: int) -> None:
        async with self._pool.acquire() as conn:
            for stream in streams:
                for first in range(1, size + 1, FILL_CHUNK):
                    await self._write(conn, stream, first, min(FILL_CHUNK, size - first + 1))

    async def scan_all(self, page: int) -> int:
        count, position = 0, 0
        async with self._pool.acquire() as conn:
            while True:
                rows = await conn.fetch(self._read_all, position, page)
                count += len(rows)
                if len(rows) < page:
                    return count
                position = rows[-1]["position"]
