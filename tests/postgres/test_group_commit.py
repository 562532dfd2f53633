"""Group commit: concurrent appends share transactions, and each one fails alone."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from evstore import (
    ANY_VERSION,
    NO_STREAM,
    AppendResult,
    AsyncEventStore,
    DuplicateEventError,
    EventData,
    StreamExistsError,
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


async def test_group_commit_set_based_batch_keeps_per_append_semantics(
    postgres_url: str,
) -> None:
    async with AsyncEventStore(postgres_url) as store:
        backend: Any = store._backend
        writer = backend._writer
        await store.append_to_stream("existing", NO_STREAM, [EventData("E", "stored")])
        fallbacks_before, batches_before = writer.fallbacks, writer.batches
        # One batch: three appends to one new stream in order, a wrong expectation, an
        # empty append, and appends to other streams.
        outcomes = await asyncio.gather(
            store.append_to_stream("same", NO_STREAM, [EventData("E", 1)]),
            store.append_to_stream("same", 1, [EventData("E", 2), EventData("E", 3)]),
            store.append_to_stream("same", 1, [EventData("E", "stale")]),
            store.append_to_stream("same", 3, [EventData("E", 4)]),
            store.append_to_stream("existing", NO_STREAM, [EventData("E", "again")]),
            store.append_to_stream("empty", ANY_VERSION, []),
            *(store.append_to_stream(f"o-{i}", NO_STREAM, [EventData("E", i)]) for i in range(20)),
            return_exceptions=True,
        )
        assert [o.stream_version for o in outcomes[:2]] == [1, 3]  # type: ignore[union-attr]
        assert isinstance(outcomes[2], WrongExpectedVersionError)
        assert outcomes[2].actual_version == 3
        assert outcomes[3].stream_version == 4  # type: ignore[union-attr]
        assert isinstance(outcomes[4], StreamExistsError)
        assert outcomes[5] == AppendResult(0, None)
        assert all(isinstance(o, AppendResult) for o in outcomes[6:])
        same = await store.read_stream_forward("same")
        assert [e.data for e in same] == [1, 2, 3, 4]
        assert [e.data for e in await store.read_stream_forward("existing")] == ["stored"]
        with pytest.raises(StreamNotFoundError):
            await store.read_stream_forward("empty")
        # All of it in one set-based statement (submitted together, so one batch), which
        # numbered its events itself: the positions it reported are those in $all.
        assert writer.fallbacks == fallbacks_before
        assert writer.batches - batches_before == 1
        everything = await store.read_all_streams_forward()
        assert [e.position for e in everything] == list(range(1, 26))
        last_of = {(e.stream_id, e.stream_version): e.position for e in everything}
        for outcome, stream in zip(outcomes, ["same"] * 4 + ["x", "y"], strict=False):
            if isinstance(outcome, AppendResult) and outcome.position is not None:
                assert last_of[(stream, outcome.stream_version)] == outcome.position


async def test_group_commit_id_shared_by_two_appends_of_a_batch_falls_back(
    postgres_url: str,
) -> None:
    async with AsyncEventStore(postgres_url) as store:
        backend: Any = store._backend
        shared = uuid.uuid4()
        outcomes = await asyncio.gather(
            *(
                store.append_to_stream(f"s-{i}", NO_STREAM, [EventData("E", i, event_id=shared)])
                for i in range(2)
            ),
            *(store.append_to_stream(f"t-{i}", NO_STREAM, [EventData("E", i)]) for i in range(10)),
            return_exceptions=True,
        )
        winners = [o for o in outcomes[:2] if isinstance(o, AppendResult)]
        losers = [o for o in outcomes[:2] if isinstance(o, DuplicateEventError)]
        assert (len(winners), len(losers)) == (1, 1), outcomes
        assert all(isinstance(o, AppendResult) for o in outcomes[2:])
        assert len(await store.read_all_streams_forward()) == 11
        assert backend._writer.fallbacks >= 1


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
async def test_group_commit_stream_created_meanwhile_by_another_transaction(
    postgres_url: str, raw_conn: asyncpg.Connection, outcome: str
) -> None:
    async with AsyncEventStore(postgres_url, timeout=30) as store:
        transaction = raw_conn.transaction()
        await transaction.start()
        # Another transaction creates the stream and keeps it uncommitted: the store's
        # append of the stream's first event has to wait for it and then decide.
        await store.append_to_stream("new", NO_STREAM, [EventData("E", "other")], conn=raw_conn)
        racing = asyncio.ensure_future(
            store.append_to_stream("new", NO_STREAM, [EventData("E", "mine")])
        )
        others = await asyncio.gather(
            *(store.append_to_stream(f"o-{i}", NO_STREAM, [EventData("E", i)]) for i in range(5))
        )
        assert [r.stream_version for r in others] == [1] * 5  # not held up meanwhile
        assert not racing.done()
        # Whichever event the stream ends with is delivered once it has its position.
        sub = await store.subscribe("new")
        await (transaction.commit() if outcome == "commit" else transaction.rollback())
        if outcome == "commit":
            with pytest.raises(StreamExistsError):
                await asyncio.wait_for(racing, 10)
            expected = ["other"]  # numbered by a sequencer cycle after the commit
        else:
            assert (await asyncio.wait_for(racing, 10)).stream_version == 1
            expected = ["mine"]
        delivered = await sub.receive(timeout=10)
        assert delivered is not None and [e.data for e in delivered] == expected
        await sub.close()
        assert [e.data for e in await store.read_stream_forward("new")] == expected
        positions = [e.position for e in await store.read_all_streams_forward()]
        assert positions == list(range(1, 7))
