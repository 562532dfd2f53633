"""``column_data_type="jsonb"``: JSON payloads stored as jsonb, bytes refused."""

from __future__ import annotations

import asyncpg
import pytest

from evstore import (
    NO_STREAM,
    AsyncEventStore,
    EventData,
    InvalidArgumentError,
    SnapshotData,
    StreamNotFoundError,
)


async def test_jsonb_payloads_round_trip_and_are_queryable(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    data = {"name": "Zoë ✓", "n": 12345678901234, "nested": {"list": [1, 2.5, None, True]}}
    async with AsyncEventStore(postgres_url, column_data_type="jsonb") as store:
        await store.append_to_stream(
            "s",
            NO_STREAM,
            [EventData("Created", data, {"user": "u1"}), EventData("Listed", [1, "two"])],
        )
        events = await store.read_stream_forward("s")
        assert [(e.data, e.metadata) for e in events] == [
            (data, {"user": "u1"}),
            ([1, "two"], None),
        ]
        assert [e.data for e in await store.read_all_streams_forward()] == [data, [1, "two"]]
        await store.link_to_stream("l", NO_STREAM, events)
        assert [e.data for e in await store.read_stream_forward("l")] == [data, [1, "two"]]

        await store.record_snapshot(SnapshotData("agg", 3, "Agg", {"total": 3}, {"m": 1}))
        snapshot = await store.read_snapshot("agg")
        assert (snapshot.data, snapshot.metadata) == ({"total": 3}, {"m": 1})

        # Stream metadata is JSON too, and still enforced.
        await store.set_stream_metadata("s", {"$maxCount": 1})
        assert await store.get_stream_metadata("s") == {"$maxCount": 1}
        assert [e.event_type for e in await store.read_stream_forward("s")] == ["Listed"]

    column = await raw_conn.fetchval(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'events'::regclass AND attname = 'data'"
    )
    assert column == "jsonb"
    names = await raw_conn.fetch(
        "SELECT data -> 'nested' -> 'list' ->> 1 FROM events WHERE event_type = 'Created'"
    )
    assert [r[0] for r in names] == ["2.5"]


async def test_jsonb_refuses_bytes_payloads_and_writes_nothing(postgres_url: str) -> None:
    async with AsyncEventStore(postgres_url, column_data_type="jsonb") as store:
        with pytest.raises(InvalidArgumentError, match="jsonb"):
            await store.append_to_stream("s", NO_STREAM, [EventData("E", b"\x00\x01")])
        with pytest.raises(InvalidArgumentError, match="jsonb"):
            await store.append_to_stream("s", NO_STREAM, [EventData("E", {}, b"raw")])
        with pytest.raises(InvalidArgumentError, match="jsonb"):
            await store.record_snapshot(SnapshotData("agg", 1, "Agg", b"raw"))
        with pytest.raises(StreamNotFoundError):
            await store.stream_info("s")
        assert await store.read_all_streams_forward() == []
