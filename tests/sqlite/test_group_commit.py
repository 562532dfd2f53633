"""Concurrent writes in one process share transactions, and each keeps its own outcome."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

import evstore
from evstore import AsyncEventStore, EventData
from evstore.backends.sqlite import SQLiteBackend


def _backend(store: AsyncEventStore) -> SQLiteBackend:
    backend = store._backend
    assert isinstance(backend, SQLiteBackend)
    return backend


async def test_sqlite_group_commit_isolates_failures_and_shares_transactions(
    sqlite_path: Path,
) -> None:
    async with AsyncEventStore(f"sqlite:///{sqlite_path}") as store:
        stored = EventData("seed", 0)
        await store.append_to_stream("existing", evstore.NO_STREAM, [stored])
        before = _backend(store).writer_stats()

        calls: list[tuple[str, Any]] = []
        for i in range(300):
            if i % 10 == 3:  # wrong expectation
                calls.append(("wrong", store.append_to_stream("existing", 99, [EventData("x", i)])))
            elif i % 10 == 7:  # a batch whose second event reuses a stored id
                batch = [EventData("x", i), EventData("x", i, event_id=stored.event_id)]
                calls.append(
                    ("dup", store.append_to_stream(f"own-{i}", evstore.ANY_VERSION, batch))
                )
            else:
                calls.append(
                    (
                        "good",
                        store.append_to_stream(f"own-{i}", evstore.NO_STREAM, [EventData("x", i)]),
                    )
                )
        outcomes = await asyncio.gather(*(call for _, call in calls), return_exceptions=True)

        for (kind, _), outcome in zip(calls, outcomes, strict=True):
            if kind == "good":
                assert isinstance(outcome, evstore.AppendResult) and outcome.stream_version == 1
            elif kind == "wrong":
                assert isinstance(outcome, evstore.WrongExpectedVersionError)
                assert outcome.actual_version == 1
            else:
                assert isinstance(outcome, evstore.DuplicateEventError)
                assert outcome.event_id == stored.event_id
        good = [o for (kind, _), o in zip(calls, outcomes, strict=True) if kind == "good"]
        positions = sorted(o.position for o in good)  # type: ignore[union-attr]
        assert positions == list(range(2, 2 + len(good)))  # failures left no holes
        all_events = await store.read_all_streams_forward(0, 1000)
        assert len(all_events) == 1 + len(good)

        stats = _backend(store).writer_stats()
        requests = stats.requests - before.requests
        transactions = stats.transactions - before.transactions
        assert requests == 300
        # Appends queued together were committed together.
        assert transactions < requests / 5, (transactions, requests)
        assert stats.largest_batch > 10


async def test_sqlite_concurrent_same_expectation_has_exactly_one_winner(sqlite_path: Path) -> None:
    async with AsyncEventStore(f"sqlite:///{sqlite_path}") as store:
        await store.append_to_stream("s", evstore.NO_STREAM, [EventData("x", 0)])
        outcomes = await asyncio.gather(
            *(store.append_to_stream("s", 1, [EventData("x", i)]) for i in range(30)),
            return_exceptions=True,
        )
        winners = [o for o in outcomes if isinstance(o, evstore.AppendResult)]
        losers = [o for o in outcomes if isinstance(o, evstore.WrongExpectedVersionError)]
        assert len(winners) == 1 and len(losers) == 29
        assert winners[0].stream_version == 2


async def test_sqlite_concurrent_any_version_appends_to_new_stream_are_contiguous(
    sqlite_path: Path,
) -> None:
    async with AsyncEventStore(f"sqlite:///{sqlite_path}") as store:
        results = await asyncio.gather(
            *(
                store.append_to_stream("new", evstore.ANY_VERSION, [EventData("x", i)] * 1)
                for i in range(50)
            )
        )
        assert sorted(r.stream_version for r in results) == list(range(1, 51))
        events = await store.read_stream_forward("new")
        assert [e.stream_version for e in events] == list(range(1, 51))
        assert [e.position for e in events] == list(range(1, 51))


async def test_sqlite_writes_from_two_stores_on_one_file_serialise(sqlite_path: Path) -> None:
    """Two backends in one process have two writer connections contending on the lock."""
    url = f"sqlite:///{sqlite_path}"
    async with AsyncEventStore(url) as one, AsyncEventStore(url) as two:
        outcomes = await asyncio.gather(
            *(
                store.append_to_stream("shared", 0, [EventData("x", uuid.uuid4().hex)])
                for store in (one, two) * 10
            ),
            return_exceptions=True,
        )
        assert sum(isinstance(o, evstore.AppendResult) for o in outcomes) == 1
        assert sum(isinstance(o, evstore.WrongExpectedVersionError) for o in outcomes) == 19


async def test_sqlite_driver_error_fails_only_its_own_append(sqlite_path: Path) -> None:
    """A disk-full error (forced with max_page_count) is one request's StorageError."""
    async with AsyncEventStore(f"sqlite:///{sqlite_path}") as store:
        backend = _backend(store)
        pages = await backend._write(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
        await backend._write(
            lambda c: c.execute(f"PRAGMA max_page_count = {pages + 40}").fetchone()
        )
        calls = [
            store.append_to_stream(f"small-{i}", evstore.NO_STREAM, [EventData("t", i)])
            for i in range(20)
        ]
        big = store.append_to_stream("big", evstore.NO_STREAM, [EventData("t", b"x" * 1_000_000)])
        calls.insert(10, big)
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        failed = outcomes.pop(10)
        assert isinstance(failed, evstore.errors.StorageError)
        assert isinstance(failed.__cause__, sqlite3.OperationalError)
        assert [o.position for o in outcomes] == list(range(1, 21))  # type: ignore[union-attr]
        with pytest.raises(evstore.StreamNotFoundError):
            await store.stream_info("big")
