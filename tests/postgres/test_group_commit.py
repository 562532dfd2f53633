"""Group commit: concurrent appends share transactions, and each one fails alone."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from evstore import (
    ANY_VERSION,
    NO_STREAM,
    AppendResult,
    AsyncEventStore,
    DuplicateEventError,
    EventData,
    StreamNotFoundError,
    WrongExpectedVersionError,
)


async def test_group_commit_bad_appends_fail_alone_and_good_ones_share_transactions(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    async with AsyncEventStore(postgres_url) as store:
        stored = EventData("E", "stored")
        await store.append_to_stream("existing", NO_STREAM, [stored])
        await store.append_to_stream("versioned", 0, [EventData("E", 0)])
        repeated = uuid.uuid4()
        good = [
            store.append_to_stream(f"good-{i}", NO_STREAM, [EventData("E", i), EventData("E", i)])
            for i in range(120)
        ]
        wrong = [store.append_to_stream("versioned", 5, [EventData("E", i)]) for i in range(10)]
        reuses_stored = [
            store.append_to_stream(
                f"reuses-{i}",
                ANY_VERSION,
                [EventData("E", i), EventData("E", i, event_id=stored.event_id)],
            )
            for i in range(5)
        ]
        repeats = store.append_to_stream(
            "repeats",
            ANY_VERSION,
            [EventData("E", 1, event_id=repeated), EventData("E", 2, event_id=repeated)],
        )
        outcomes = await asyncio.gather(
            *good, *wrong, *reuses_stored, repeats, return_exceptions=True
        )

        good_results = outcomes[:120]
        assert all(isinstance(r, AppendResult) and r.stream_version == 2 for r in good_results), [
            r for r in good_results if not isinstance(r, AppendResult)
        ]
        positions = sorted(r.position for r in good_results if isinstance(r, AppendResult))
        assert len(set(positions)) == 120
        for error in outcomes[120:130]:
            assert isinstance(error, WrongExpectedVersionError)
            assert (error.expected_version, error.actual_version) == (5, 1)
        for error in outcomes[130:135]:
            assert isinstance(error, DuplicateEventError)
            assert error.event_id == stored.event_id
        assert isinstance(outcomes[135], DuplicateEventError)
        assert outcomes[135].event_id == repeated

        # The failures wrote nothing, their neighbours everything.
        for stream in [f"reuses-{i}" for i in range(5)] + ["repeats"]:
            with pytest.raises(StreamNotFoundError):
                await store.stream_info(stream)
        assert (await store.stream_info("versioned")).stream_version == 1
        everything = await store.read_all_streams_forward(0, 10_000)
        assert [e.position for e in everything] == list(range(1, 2 + 240 + 1))

    # 120 appends, but far fewer transactions: each event row carries its transaction's xid.
    transactions = await raw_conn.fetchval(
        "SELECT count(DISTINCT e.xid) FROM events e JOIN streams s USING (stream_key) "
        "WHERE s.stream_id LIKE 'good-%'"
    )
    assert transactions <= 12, transactions


async def test_group_commit_append_waiting_for_a_locked_stream_does_not_hold_up_others(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    async with AsyncEventStore(postgres_url, timeout=30) as store:
        await store.append_to_stream("locked", NO_STREAM, [EventData("E", 0)])
        transaction = raw_conn.transaction()
        await transaction.start()
        # The caller's transaction now holds the stream's row lock until it ends.
        await store.append_to_stream("locked", 1, [EventData("E", "caller")], conn=raw_conn)
        blocked = asyncio.ensure_future(
            store.append_to_stream("locked", ANY_VERSION, [EventData("E", "queued")])
        )
        free = [
            store.append_to_stream(f"free-{i}", NO_STREAM, [EventData("E", i)]) for i in range(20)
        ]
        # Submitted together, so they share batches with the blocked append.
        done = await asyncio.wait_for(asyncio.gather(*free), 10)
        assert [r.stream_version for r in done] == [1] * 20
        assert not blocked.done()
        await transaction.commit()
        result = await asyncio.wait_for(blocked, 10)
        assert result.stream_version == 3
        versions = [e.data for e in await store.read_stream_forward("locked")]
        assert versions == [0, "caller", "queued"]
