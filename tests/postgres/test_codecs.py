"""The pool's timestamptz codec: the values asyncpg's own codec gives, built once per run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg

from evstore import NO_STREAM, AsyncEventStore, EventData
from evstore.backends.postgres._codecs import timestamp_codec

MOMENTS = [
    datetime(2000, 1, 1, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999998, tzinfo=UTC),
    datetime(2026, 12, 3, 8, 0, 0, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30))),
]


async def test_codecs_match_asyncpg_for_every_value(postgres_url: str) -> None:
    plain = await asyncpg.connect(postgres_url)
    ours = await asyncpg.connect(postgres_url)
    encode, decode = timestamp_codec()
    await ours.set_type_codec(
        "timestamptz", schema="pg_catalog", encoder=encode, decoder=decode, format="tuple"
    )
    try:
        query = "SELECT $1::timestamptz, $1::timestamptz::text"
        extremes = [datetime.max, datetime.min, datetime(1, 1, 1, tzinfo=UTC)]
        for moment in [*MOMENTS, datetime(2020, 5, 1, 12, 0), *extremes]:  # naive ones too
            assert await ours.fetchrow(query, moment) == await plain.fetchrow(query, moment)
        for text in ("infinity", "-infinity", "2024-02-29 23:59:59.999999+00"):
            query = f"SELECT '{text}'::timestamptz"
            assert await ours.fetchval(query) == await plain.fetchval(query)
            back = await ours.fetchval("SELECT $1::timestamptz::text", await plain.fetchval(query))
            assert back == await plain.fetchval(f"SELECT '{text}'::timestamptz::text")
        # Rows that repeat a timestamp get the same object; others their own value.
        rows = await ours.fetch(
            "SELECT t FROM unnest($1::timestamptz[]) WITH ORDINALITY AS u(t, n) ORDER BY n",
            [MOMENTS[0], MOMENTS[0], MOMENTS[2], MOMENTS[2], MOMENTS[0]],
        )
        values = [row[0] for row in rows]
        assert values == [MOMENTS[0], MOMENTS[0], MOMENTS[2], MOMENTS[2], MOMENTS[0]]
        assert values[0] is values[1] and values[2] is values[3]
        assert all(value.tzinfo is UTC for value in values)
    finally:
        await plain.close()
        await ours.close()


async def test_codecs_store_reads_back_exact_created_at(postgres_url: str) -> None:
    async with AsyncEventStore(postgres_url) as store:
        for index, moment in enumerate(MOMENTS):
            await store.append_to_stream(
                f"s-{index}", NO_STREAM, [EventData("E", index)] * 1, created_at=moment
            )
        events = await store.read_all_streams_forward()
        assert [e.created_at for e in events] == [m.astimezone(UTC) for m in MOMENTS]
        assert all(e.created_at.tzinfo is UTC for e in events)
        info: Any = await store.stream_info("s-0")
        assert info.created_at == MOMENTS[0]
