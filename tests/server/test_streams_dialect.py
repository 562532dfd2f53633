"""The KurrentDB dialect over a real store: revisions, expectations, soft delete and
undelete, tombstones, idempotent re-appends, metadata shared with the library."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from evstore import ANY_VERSION, AsyncEventStore, EventData
from evstore.backends.base import NewEvent
from evstore.errors import StreamDeletedError
from evstore.server.convert import EventEncoder
from evstore.server.dialect import (
    INT64_MAX,
    BadRequest,
    Dialect,
    Expected,
    StreamDeleted,
    StreamNotFound,
    WrongExpectedVersion,
)

ANY = Expected.any()
NO_STREAM = Expected.no_stream()
EXISTS = Expected.stream_exists()


@pytest.fixture(params=["sqlite", "memory", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEventStore]:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'events.db'}"
    else:
        url = "memory://"
    async with AsyncEventStore(url) as opened:
        yield opened


@pytest.fixture
def dialect(store: AsyncEventStore) -> Dialect:
    return Dialect(store, page_size=3)


@pytest.fixture
def make(store: AsyncEventStore) -> Callable[..., NewEvent]:
    encoder = EventEncoder(json_native=True, binary=store._backend.supports_binary)

    def build(
        event_type: str = "Happened",
        data: bytes = b'{"n": 1}',
        *,
        event_id: uuid.UUID | None = None,
        content_type: str = "application/json",
        metadata: bytes = b"",
    ) -> NewEvent:
        return encoder.new_event(event_id or uuid.uuid4(), event_type, content_type, data, metadata)

    return build


async def rows_of(dialect: Dialect, stream: str, start: int = 0, count: int = 1000) -> list[Any]:
    return [row async for row in await dialect.read_stream(stream, start, count, forward=True)]


async def test_revisions_are_zero_based(
    dialect: Dialect, make: Callable[..., NewEvent], store: AsyncEventStore
) -> None:
    first = await dialect.append("s", NO_STREAM, [make(), make()])
    assert first.revision == 1
    second = await dialect.append("s", Expected.exact(1), [make()])
    assert second.revision == 2
    assert second.position is not None and first.position is not None
    assert second.position > first.position
    events = await store.read_stream_forward("s")
    assert [e.stream_version for e in events] == [1, 2, 3]
    assert events[-1].position == second.position


async def test_expectations(dialect: Dialect, make: Callable[..., NewEvent]) -> None:
    with pytest.raises(WrongExpectedVersion) as missing:
        await dialect.append("s", EXISTS, [make()])
    assert missing.value.current is None and missing.value.actual_code == -1
    with pytest.raises(WrongExpectedVersion):
        await dialect.append("s", Expected.exact(0), [make()])
    assert (await dialect.append("s", ANY, [make()])).revision == 0
    assert (await dialect.append("s", EXISTS, [make()])).revision == 1
    with pytest.raises(WrongExpectedVersion) as wrong:
        await dialect.append("s", Expected.exact(5), [make()])
    assert wrong.value.current == 1
    assert wrong.value.expected.code == 5
    with pytest.raises(WrongExpectedVersion) as exists:
        await dialect.append("s", NO_STREAM, [make()])
    assert exists.value.current == 1 and exists.value.expected.code == -1
    with pytest.raises(WrongExpectedVersion):
        await dialect.append("s", Expected.exact(0), [make()])  # behind, and not a re-send


async def test_empty_append_checks_only(dialect: Dialect, make: Callable[..., NewEvent]) -> None:
    assert await dialect.append("s", NO_STREAM, []) == (await dialect.append("s", ANY, []))
    assert (await dialect.append("s", ANY, [])).revision is None
    await dialect.append("s", ANY, [make()])
    assert (await dialect.append("s", Expected.exact(0), [])).revision == 0


async def test_stream_exists_passes_with_metadata_only(
    dialect: Dialect, make: Callable[..., NewEvent], store: AsyncEventStore
) -> None:
    await store.set_stream_metadata("s", {"custom": 1})
    assert (await dialect.append("s", EXISTS, [make()])).revision == 0


async def test_soft_delete_and_undelete(
    dialect: Dialect, make: Callable[..., NewEvent], store: AsyncEventStore
) -> None:
    await dialect.append("s", ANY, [make(), make(), make()])
    await store.set_stream_metadata("s", {"custom": "kept until the delete"})
    deleted = await dialect.delete("s", Expected.exact(2))
    assert deleted.position is not None
    assert await store.get_stream_metadata("s") == {"$tb": INT64_MAX}
    with pytest.raises(StreamNotFound):
        await dialect.read_stream("s", 1, 10, forward=True)
    # $all still has the events.
    assert len([r for r in await dialect.all_page(1, 100, forward=True) if r[2] == "s"]) == 3
    # Deleting again: any and the pre-delete revision succeed, others do not.
    await dialect.delete("s", ANY)
    await dialect.delete("s", Expected.exact(2))
    with pytest.raises(WrongExpectedVersion) as wrong:
        await dialect.delete("s", Expected.exact(7))
    assert wrong.value.current == 2
    with pytest.raises(StreamDeleted):
        await dialect.delete("s", EXISTS)
    with pytest.raises(StreamDeleted):
        await dialect.append("s", EXISTS, [make()])
    with pytest.raises(WrongExpectedVersion):
        await dialect.append("s", Expected.exact(1), [make()])
    # no_stream undeletes; numbering continues; only the new events are visible.
    result = await dialect.append("s", NO_STREAM, [make("New"), make("New")])
    assert result.revision == 4
    rows = await rows_of(dialect, "s")
    assert [(r[0] - 1, r[5]) for r in rows] == [(3, "New"), (4, "New")]
    assert await store.get_stream_metadata("s") == {"$tb": 3}
    # The library sees the same: version 4 and 5 only.
    assert [e.stream_version for e in await store.read_stream_forward("s")] == [4, 5]


async def test_undelete_with_the_pre_delete_revision(
    dialect: Dialect, make: Callable[..., NewEvent]
) -> None:
    await dialect.append("s", ANY, [make(), make()])
    await dialect.delete("s", ANY)
    assert (await dialect.append("s", Expected.exact(1), [make()])).revision == 2
    assert [r[0] for r in await rows_of(dialect, "s")] == [3]


async def test_undelete_with_any_under_concurrency(
    dialect: Dialect, make: Callable[..., NewEvent]
) -> None:
    await dialect.append("s", ANY, [make(), make()])
    await dialect.delete("s", ANY)
    results = await asyncio.gather(*(dialect.append("s", ANY, [make()]) for _ in range(10)))
    assert sorted(r.revision for r in results) == list(range(2, 12))
    assert [r[0] - 1 for r in await rows_of(dialect, "s")] == list(range(2, 12))
    assert len(dialect._locks) == 0


async def test_delete_of_a_stream_that_never_existed(dialect: Dialect) -> None:
    for expected in (ANY, NO_STREAM, EXISTS, Expected.exact(0)):
        with pytest.raises(WrongExpectedVersion) as missing:
            await dialect.delete("never", expected)
        assert missing.value.actual_code == -1


async def test_tombstone(
    dialect: Dialect, make: Callable[..., NewEvent], store: AsyncEventStore
) -> None:
    await dialect.append("s", ANY, [make(), make()])
    with pytest.raises(WrongExpectedVersion):
        await dialect.tombstone("s", Expected.exact(0))
    result = await dialect.tombstone("s", Expected.exact(1))
    assert result.position is not None
    last = (await dialect.all_page(-1, 1, forward=False))[0]
    assert (last[2], last[5], last[4]) == ("s", "$streamDeleted", result.position)
    for expected in (ANY, NO_STREAM, EXISTS, Expected.exact(2)):
        with pytest.raises(StreamDeleted):
            await dialect.append("s", expected, [make()])
        with pytest.raises(StreamDeleted):
            await dialect.tombstone("s", expected)
        with pytest.raises(StreamDeleted):
            await dialect.delete("s", expected)
    with pytest.raises(StreamDeleted):
        await dialect.read_stream("s", 1, 10, forward=True)
    with pytest.raises(StreamDeletedError):
        await store.read_stream_forward("s")
    # The metadata stream: reads refused, writes accepted.
    with pytest.raises(StreamDeleted):
        await dialect.read_stream("$$s", 1, 10, forward=True)
    await dialect.append("$$s", ANY, [make("$metadata", b'{"a": 1}')])


async def test_tombstone_of_a_stream_that_never_existed(
    dialect: Dialect, make: Callable[..., NewEvent]
) -> None:
    with pytest.raises(WrongExpectedVersion) as missing:
        await dialect.tombstone("never", EXISTS)
    assert missing.value.actual_code == -1
    await dialect.tombstone("never", ANY)
    with pytest.raises(StreamDeleted):
        await dialect.append("never", ANY, [make()])


async def test_tombstone_of_a_soft_deleted_stream(
    dialect: Dialect, make: Callable[..., NewEvent]
) -> None:
    await dialect.append("s", ANY, [make()])
    await dialect.delete("s", ANY)
    await dialect.tombstone("s", ANY)
    with pytest.raises(StreamDeleted):
        await dialect.read_stream("s", 1, 10, forward=True)


async def test_idempotent_reappend(dialect: Dialect, make: Callable[..., NewEvent]) -> None:
    a, b, c = make(), make(), make()
    first = await dialect.append("s", NO_STREAM, [a, b])
    # Same ids, same expectation: the original result, nothing written.
    assert await dialect.append("s", NO_STREAM, [a, b]) == first
    assert await dialect.append("s", ANY, [a, b]) == first
    assert await dialect.append("s", EXISTS, [a, b]) == first
    await dialect.append("s", Expected.exact(1), [c])
    assert (await dialect.append("s", Expected.exact(1), [c])).revision == 2
    assert (await dialect.append("s", ANY, [b])).revision == 1
    assert len(await rows_of(dialect, "s")) == 3
    # Partly written, out of order, or elsewhere: WrongExpectedVersion.
    with pytest.raises(WrongExpectedVersion):
        await dialect.append("s", ANY, [b, make()])
    with pytest.raises(WrongExpectedVersion):
        await dialect.append("s", ANY, [b, a])
    with pytest.raises(WrongExpectedVersion):
        await dialect.append("s", Expected.exact(0), [c])
    with pytest.raises(WrongExpectedVersion):
        await dialect.append("other", ANY, [a])
    assert len(await rows_of(dialect, "s")) == 3


async def test_reads_are_inclusive_and_paged(
    dialect: Dialect, make: Callable[..., NewEvent]
) -> None:
    await dialect.append("s", ANY, [make() for _ in range(8)])
    assert [r[0] for r in await rows_of(dialect, "s", 3)] == [3, 4, 5, 6, 7, 8]
    assert [r[0] for r in await rows_of(dialect, "s", 2, 4)] == [2, 3, 4, 5]
    backward = await dialect.read_stream("s", 5, 100, forward=False)
    assert [r[0] async for r in backward] == [5, 4, 3, 2, 1]
    end = await dialect.read_stream("s", -1, 2, forward=False)
    assert [r[0] async for r in end] == [8, 7]
    with pytest.raises(StreamNotFound):
        await dialect.read_stream("missing", 1, 10, forward=True)
    with pytest.raises(BadRequest):
        await dialect.read_stream("", 1, 10, forward=True)
    with pytest.raises(BadRequest):
        await dialect.append("$all", ANY, [make()])


async def test_metadata_is_shared_with_the_library(
    dialect: Dialect, make: Callable[..., NewEvent], store: AsyncEventStore
) -> None:
    await dialect.append("$$s", ANY, [make("$metadata", b'{"$maxCount": 2, "owner": "x"}')])
    assert await store.get_stream_metadata("s") == {"$maxCount": 2, "owner": "x"}
    await dialect.append("s", ANY, [make() for _ in range(5)])
    assert [r[0] for r in await rows_of(dialect, "s")] == [4, 5]
    await store.set_stream_metadata("s", {"$tb": 1})
    rows = await rows_of(dialect, "$$s")
    assert [r[6] for r in rows][-1] == b'{"$tb":1}'
    assert [r[0] for r in await rows_of(dialect, "s")] == [2, 3, 4, 5]


async def test_library_events_read_through_the_dialect(
    dialect: Dialect, store: AsyncEventStore
) -> None:
    await store.append_to_stream("lib", ANY_VERSION, [EventData("Made", {"k": "v"})])
    rows = await rows_of(dialect, "lib")
    assert rows[0][0] - 1 == 0 and rows[0][5] == "Made"
    assert bytes(rows[0][6]) == b'{"k":"v"}'


async def test_payloads_round_trip_to_the_library(
    dialect: Dialect, make: Callable[..., NewEvent], store: AsyncEventStore
) -> None:
    correlation = uuid.uuid4()
    await dialect.append(
        "p",
        ANY,
        [
            make(
                "Json",
                b'{"a": [1, 2]}',
                metadata=b'{"$correlationId": "%s"}' % str(correlation).encode(),
            ),
            make("Bin", b"\x00\x01", content_type="application/octet-stream"),
            make("Empty", b""),
        ],
    )
    events = await store.read_stream_forward("p")
    assert events[0].data == {"a": [1, 2]}
    assert events[0].metadata == {"$correlationId": str(correlation)}
    assert events[0].correlation_id == correlation
    assert events[1].data == b"\x00\x01"
    assert events[2].data == b""
    rows = await rows_of(dialect, "p")
    assert bytes(rows[0][6]) == b'{"a": [1, 2]}'  # byte for byte


async def test_library_reads_a_soft_deleted_stream(
    dialect: Dialect,
    make: Callable[..., NewEvent],
    store: AsyncEventStore,
) -> None:
    # $tb = 2**63 - 1 (KurrentDB's soft delete) must not overflow a 64-bit bound.
    await dialect.append("s", ANY, [make()])
    await dialect.delete("s", ANY)
    assert await store.read_stream_forward("s") == []


async def test_undelete_keeps_valid_metadata_only(
    dialect: Dialect, make: Callable[..., NewEvent], store: AsyncEventStore
) -> None:
    await dialect.append("s", ANY, [make()])
    # A client wrote metadata the library would refuse, keeping the stream deleted.
    deleted = b'{"$tb": 9223372036854775807, "$maxAge": "soon", "$maxCount": 5, "k": 1}'
    await dialect.append("$$s", ANY, [make("$metadata", deleted)])
    assert (await dialect.append("s", ANY, [make()])).revision == 1
    assert await store.get_stream_metadata("s") == {"$tb": 1, "$maxCount": 5, "k": 1}
    assert [r[0] for r in await rows_of(dialect, "s")] == [2]
