"""The SQLite backend behaves like the reference memory backend.

A seeded random sequence of operations runs against both through the public façade, and
every result and every error must match (times excluded: the two stores take their own
clocks). Targeted tests cover what a random walk reaches rarely.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import evstore
from evstore import AsyncEventStore, EventData
from evstore.errors import EventStoreError, NotSupportedError

STREAMS = ["s1", "s2", "s3", "$$s1", "t-1", "T-2"]
EXPECTED: list[Any] = [evstore.ANY_VERSION, evstore.NO_STREAM, evstore.STREAM_EXISTS, 0, 1, 2, 3, 4]


def _event_view(event: evstore.RecordedEvent) -> tuple[Any, ...]:
    # set_stream_metadata draws a fresh event id in each store: compare the rest.
    event_id = None if event.event_type == "$metadata" else event.event_id
    return (
        event_id,
        event.event_number,
        event.stream_id,
        event.stream_version,
        event.position,
        event.event_type,
        event.data,
        event.metadata,
        event.correlation_id,
        event.causation_id,
    )


def _view(value: Any) -> Any:
    """A comparable form of a result: timestamps replaced by whether they are set."""
    if isinstance(value, list):
        return [_view(item) for item in value]
    if isinstance(value, evstore.RecordedEvent):
        return _event_view(value)
    if isinstance(value, evstore.StreamInfo):
        return (value.stream_id, value.stream_version, value.deleted_at is None, value.status)
    if isinstance(value, evstore.Page):
        return (_view(value.entries), value.page_number, value.total_entries, value.total_pages)
    return value


def _error_view(exc: EventStoreError) -> tuple[Any, ...]:
    fields = ("stream_id", "expected_version", "actual_version", "event_id", "event_ids")
    return (type(exc).__name__, *(getattr(exc, name, None) for name in fields))


class _Walk:
    """Generates one random operation at a time, remembering event ids to reuse."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.known: list[uuid.UUID] = []

    def _event_id(self) -> uuid.UUID:
        if self.known and self.rng.random() < 0.08:
            return self.rng.choice(self.known)
        new = uuid.UUID(int=self.rng.getrandbits(128), version=4)
        self.known.append(new)
        return new

    def operation(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        rng = self.rng
        kind = rng.choices(
            ["append", "link", "delete", "read", "read_all", "info", "page", "meta"],
            weights=[30, 8, 4, 18, 8, 6, 6, 3],
        )[0]
        stream = rng.choice(STREAMS)
        expected = rng.choice(EXPECTED)
        if kind == "append":
            events = [
                EventData(
                    rng.choice(["a", "b"]),
                    {"n": rng.randrange(100)} if rng.random() < 0.8 else b"\x00raw",
                    {"m": 1} if rng.random() < 0.3 else None,
                    event_id=self._event_id(),
                    correlation_id=uuid.UUID(int=rng.getrandbits(128))
                    if rng.random() < 0.3
                    else None,
                )
                for _ in range(rng.choice([0, 1, 1, 2, 3]))
            ]
            return "append_to_stream", (stream, expected, events), {}
        if kind == "link":
            ids = [
                rng.choice(self.known) if self.known and rng.random() < 0.9 else uuid.uuid4()
                for _ in range(rng.choice([0, 1, 2]))
            ]
            target = rng.choice(["l1", "l2", *STREAMS])
            return "link_to_stream", (target, expected, ids), {}
        if kind == "delete":
            return "delete_stream", (stream, expected), {"hard": rng.random() < 0.6}
        if kind == "read":
            target = rng.choice([*STREAMS, "l1", "l2"])
            forward = rng.random() < 0.5
            start = rng.randrange(-1, 6)
            name = "read_stream_forward" if forward else "read_stream_backward"
            return name, (target, start, rng.randrange(0, 5)), {}
        if kind == "read_all":
            forward = rng.random() < 0.5
            name = "read_all_streams_forward" if forward else "read_all_streams_backward"
            return name, (rng.randrange(-1, 12), rng.randrange(0, 6)), {}
        if kind == "info":
            return "stream_info", (rng.choice([*STREAMS, "$all", "l1"]),), {}
        if kind == "page":
            return (
                "paginate_streams",
                (),
                {
                    "page_size": rng.randrange(1, 5),
                    "page_number": rng.randrange(1, 4),
                    "search": rng.choice([None, "s", "-", "$", "T", "zz", "$al"]),
                    "sort_by": rng.choice(
                        ["created_at", "stream_id", "stream_version", "deleted_at", "status"]
                    ),
                    "sort_dir": rng.choice(["asc", "desc"]),
                },
            )
        metadata = rng.choice(
            [{"$maxCount": rng.randrange(0, 3)}, {"$tb": rng.randrange(0, 3)}, {}]
        )
        return "set_stream_metadata", (rng.choice(["s1", "s2"]), metadata), {}


async def _outcome(
    store: AsyncEventStore, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    try:
        return ("ok", _view(await getattr(store, name)(*args, **kwargs)))
    except EventStoreError as exc:
        return ("error", _error_view(exc))


@pytest.mark.parametrize("seed", range(6))
async def test_sqlite_matches_memory_backend_on_random_operations(
    sqlite_path: Path, seed: int
) -> None:
    walk = _Walk(seed)
    async with (
        AsyncEventStore("memory://", enable_hard_deletes=True) as reference,
        AsyncEventStore(f"sqlite:///{sqlite_path}", enable_hard_deletes=True) as store,
    ):
        errors = 0
        for step in range(400):
            name, args, kwargs = walk.operation()
            expected = await _outcome(reference, name, args, kwargs)
            actual = await _outcome(store, name, args, kwargs)
            assert actual == expected, f"step {step}: {name}{args}{kwargs}"
            errors += expected[0] == "error"
        # The walk must exercise both paths to prove anything.
        assert 40 < errors < 360


async def test_sqlite_created_at_round_trips_as_aware_utc_with_microseconds(
    sqlite_path: Path,
) -> None:
    async with AsyncEventStore(f"sqlite:///{sqlite_path}") as store:
        before = datetime.now(UTC)
        await store.append_to_stream("s", evstore.NO_STREAM, [EventData("t", 1)])
        (event,) = await store.read_stream_forward("s")
        assert event.created_at.tzinfo is not None
        assert event.created_at.utcoffset() == timedelta(0)
        assert before <= event.created_at <= datetime.now(UTC)
        info = await store.stream_info("s")
        assert info.created_at == event.created_at  # same clock reading, exact to the µs


async def test_sqlite_max_age_hides_old_events_and_limit_counts_visible_ones(
    sqlite_path: Path,
) -> None:
    async with AsyncEventStore(f"sqlite:///{sqlite_path}") as store:
        await store.append_to_stream("s", evstore.NO_STREAM, [EventData("t", i) for i in range(5)])
        await store.set_stream_metadata("s", {"$maxAge": 0})
        assert await store.read_stream_forward("s") == []
        await store.set_stream_metadata("s", {"$maxAge": 3600, "$tb": 1})
        events = await store.read_stream_forward("s", 0, 2)
        # $tb=1 (a 0-based revision) hides version 1; LIMIT counts visible events only.
        assert [e.event_number for e in events] == [2, 3]
        backward = await store.read_stream_backward("s", -1, 10)
        assert [e.event_number for e in backward] == [5, 4, 3, 2]


async def test_sqlite_large_append_is_atomic_with_contiguous_positions(sqlite_path: Path) -> None:
    async with AsyncEventStore(f"sqlite:///{sqlite_path}") as store:
        await store.append_to_stream("first", evstore.NO_STREAM, [EventData("t", 0)])
        events = [EventData("t", {"i": i}) for i in range(8001)]
        result = await store.append_to_stream("big", evstore.NO_STREAM, events)
        assert result == evstore.AppendResult(8001, 8002)
        stored = [e async for e in store.stream_forward("big")]
        assert [e.position for e in stored] == list(range(2, 8003))
        assert [e.event_number for e in stored] == list(range(1, 8002))
        # The same batch again, plus one duplicate at its end: nothing at all is written.
        again = [EventData("t", i) for i in range(8000)] + [
            EventData("t", 0, event_id=events[0].event_id)
        ]
        with pytest.raises(evstore.DuplicateEventError) as caught:
            await store.append_to_stream("other", evstore.ANY_VERSION, again)
        assert caught.value.event_id == events[0].event_id
        assert (await store.stream_info("$all")).stream_version == 8002
        with pytest.raises(evstore.StreamNotFoundError):
            await store.stream_info("other")


async def test_sqlite_hard_delete_keeps_the_gap_and_never_reuses_positions(
    sqlite_path: Path,
) -> None:
    async with AsyncEventStore(f"sqlite:///{sqlite_path}", enable_hard_deletes=True) as store:
        await store.append_to_stream("a", evstore.NO_STREAM, [EventData("t", 1)])
        await store.append_to_stream("b", evstore.NO_STREAM, [EventData("t", 2), EventData("t", 3)])
        await store.link_to_stream("links", evstore.NO_STREAM, await store.read_stream_forward("b"))
        await store.delete_stream("b", 2, hard=True)
        assert (await store.stream_info("$all")).stream_version == 3
        assert await store.read_stream_forward("links") == []
        assert (await store.stream_info("links")).stream_version == 2
        recreated = await store.append_to_stream("b", evstore.NO_STREAM, [EventData("t", 4)])
        assert recreated == evstore.AppendResult(1, 4)  # position 4: the deleted 2, 3 stay unused
        assert [e.position for e in await store.read_all_streams_forward()] == [1, 4]


async def test_sqlite_refuses_conn_argument(sqlite_path: Path) -> None:
    async with AsyncEventStore(f"sqlite:///{sqlite_path}") as store:
        with pytest.raises(NotSupportedError):
            await store.append_to_stream("s", evstore.ANY_VERSION, [], conn=object())
        with pytest.raises(NotSupportedError):
            await store.read_stream_forward("s", conn=object())


async def test_sqlite_snapshot_upsert_keeps_first_created_at(sqlite_path: Path) -> None:
    async with AsyncEventStore(f"sqlite:///{sqlite_path}") as store:
        with pytest.raises(evstore.SnapshotNotFoundError):
            await store.read_snapshot("x")
        await store.record_snapshot(evstore.SnapshotData("x", 1, "T", {"v": 1}))
        first = await store.read_snapshot("x")
        await store.record_snapshot(evstore.SnapshotData("x", 2, "T", b"raw", {"m": 1}))
        second = await store.read_snapshot("x")
        assert (second.source_version, second.data, second.metadata) == (2, b"raw", {"m": 1})
        assert second.created_at == first.created_at is not None
        await store.delete_snapshot("x")
        with pytest.raises(evstore.SnapshotNotFoundError):
            await store.read_snapshot("x")


async def test_sqlite_search_is_a_literal_case_sensitive_substring(sqlite_path: Path) -> None:
    async with AsyncEventStore(f"sqlite:///{sqlite_path}") as store:
        for stream in ["a%b", "a_b", "axb", "A%B"]:
            await store.append_to_stream(stream, evstore.NO_STREAM, [EventData("t", 1)])
        page = await store.paginate_streams(search="%")
        assert [info.stream_id for info in page.entries] == ["a%b", "A%B"]
        page = await store.paginate_streams(search="_")
        assert [info.stream_id for info in page.entries] == ["a_b"]
