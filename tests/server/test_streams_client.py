"""Streams with the real kurrentdbclient (sync and asyncio) against a real server:
appends (Append and BatchAppend), reads both ways, current versions, deletes, tombstones,
metadata, idempotent re-appends, wrong expected versions, cross-dialect data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from kurrentdbclient import AsyncKurrentDBClient, KurrentDBClient, NewEvent, StreamState
from kurrentdbclient.exceptions import (
    FailedPreconditionError,
    NotFoundError,
    StreamIsDeletedError,
    WrongCurrentVersionError,
)

from evstore import ANY_VERSION, EventData
from evstore.server.app import BackgroundServer

from .conftest import MakeClient


def event(kind: str = "Happened", data: bytes = b'{"n": 1}', **options: object) -> NewEvent:
    return NewEvent(type=kind, data=data, **options)  # type: ignore[arg-type]


def test_append_single_and_batch_then_read(client: KurrentDBClient) -> None:
    e1 = event("One", b'{"a": 1}', metadata=b'{"m": true}')
    position1 = client.append_to_stream(
        "orders-1", events=e1, current_version=StreamState.NO_STREAM
    )
    e2, e3 = event("Two", b"\x00\x01", content_type="application/octet-stream"), event("Three")
    position3 = client.append_to_stream("orders-1", events=[e2, e3], current_version=0)
    assert position3 > position1
    events = client.get_stream("orders-1")
    assert [e.id for e in events] == [e1.id, e2.id, e3.id]
    assert [e.stream_position for e in events] == [0, 1, 2]
    assert events[0].data == b'{"a": 1}' and events[0].metadata == b'{"m": true}'
    assert events[0].content_type == "application/json"
    assert events[1].data == b"\x00\x01"
    assert events[1].content_type == "application/octet-stream"
    assert events[2].commit_position == position3 == events[2].prepare_position
    assert events[0].commit_position == position1
    assert events[0].recorded_at is not None
    assert abs(events[0].recorded_at - datetime.now(UTC)) < timedelta(minutes=1)
    # Backwards, limits, stream_position (inclusive both ways).
    assert [e.stream_position for e in client.get_stream("orders-1", backwards=True)] == [2, 1, 0]
    assert [e.stream_position for e in client.get_stream("orders-1", stream_position=1)] == [1, 2]
    backwards = client.get_stream("orders-1", stream_position=1, backwards=True)
    assert [e.stream_position for e in backwards] == [1, 0]
    assert [e.stream_position for e in client.get_stream("orders-1", limit=2)] == [0, 1]
    assert client.get_current_version("orders-1") == 2
    assert client.get_current_version("missing") is StreamState.NO_STREAM
    with pytest.raises(NotFoundError):
        client.get_stream("missing")


def test_empty_json_payload_keeps_its_content_type(client: KurrentDBClient) -> None:
    client.append_to_stream("s", events=event(data=b""), current_version=StreamState.ANY)
    recorded = client.get_stream("s")[0]
    assert recorded.data == b"" and recorded.content_type == "application/json"


def test_read_all_both_directions(client: KurrentDBClient) -> None:
    positions = [
        client.append_to_stream(f"s-{i}", events=event(f"T{i}"), current_version=StreamState.ANY)
        for i in range(5)
    ]
    forward = list(client.read_all())
    assert [e.type for e in forward] == [f"T{i}" for i in range(5)]
    assert [e.commit_position for e in forward] == positions
    backward = list(client.read_all(backwards=True))
    assert [e.commit_position for e in backward] == positions[::-1]
    # Forwards from P is inclusive, backwards from P exclusive.
    assert [e.commit_position for e in client.read_all(commit_position=positions[2])] == (
        positions[2:]
    )
    from_p = client.read_all(commit_position=positions[2], backwards=True)
    assert [e.commit_position for e in from_p] == positions[1::-1]
    assert [e.type for e in client.read_all(limit=2)] == ["T0", "T1"]
    assert client.get_commit_position() == positions[-1]
    # The default filter hides system events; filters by type and stream, regex and prefix.
    client.set_stream_metadata("s-0", metadata={"x": 1})
    assert "$metadata" not in [e.type for e in client.read_all()]
    assert "$metadata" in [e.type for e in client.read_all(filter_exclude=[])]
    assert [e.type for e in client.read_all(filter_include=["T1", "T3"])] == ["T1", "T3"]
    by_stream = client.read_all(filter_include=["s-4"], filter_by_stream_name=True)
    assert [e.stream_name for e in by_stream] == ["s-4"]
    by_prefix = client.read_all(filter_include=["T2", "T4"], filter_by_prefix=True)
    assert [e.type for e in by_prefix] == ["T2", "T4"]
    backward_filtered = client.read_all(backwards=True, filter_include=["T0", "T4"], limit=5)
    assert [e.type for e in backward_filtered] == ["T4", "T0"]


def test_wrong_expected_versions_both_paths(client: KurrentDBClient) -> None:
    client.append_to_stream("s", events=[event(), event()], current_version=StreamState.NO_STREAM)
    # Append (single event).
    with pytest.raises(WrongCurrentVersionError) as single:
        client.append_to_stream("s", events=event(), current_version=0)
    assert single.value.actual_version == 1
    with pytest.raises(WrongCurrentVersionError):
        client.append_to_stream("s", events=event(), current_version=StreamState.NO_STREAM)
    with pytest.raises(WrongCurrentVersionError) as missing:
        client.append_to_stream("new", events=event(), current_version=StreamState.EXISTS)
    assert missing.value.actual_version is StreamState.NO_STREAM
    # BatchAppend (a list).
    with pytest.raises(WrongCurrentVersionError) as batch:
        client.append_to_stream("s", events=[event()], current_version=5)
    assert batch.value.actual_version == 1
    with pytest.raises(WrongCurrentVersionError) as batch_missing:
        client.append_to_stream("new", events=[event()], current_version=0)
    assert batch_missing.value.actual_version is StreamState.NO_STREAM
    assert client.get_current_version("s") == 1


def test_idempotent_reappend(client: KurrentDBClient) -> None:
    e1, e2 = event(), event()
    first = client.append_to_stream("s", events=[e1, e2], current_version=StreamState.NO_STREAM)
    again = client.append_to_stream("s", events=[e1, e2], current_version=StreamState.NO_STREAM)
    assert again == first
    assert client.append_to_stream("s", events=[e1, e2], current_version=StreamState.ANY) == first
    assert client.append_to_stream("s", events=e2, current_version=0) == first
    assert len(client.get_stream("s")) == 2
    with pytest.raises(WrongCurrentVersionError):
        client.append_to_stream("s", events=[e2, event()], current_version=StreamState.ANY)


def test_soft_delete_and_undelete(client: KurrentDBClient) -> None:
    client.append_to_stream(
        "s", events=[event(), event(), event()], current_version=StreamState.ANY
    )
    client.delete_stream("s", current_version=2)
    with pytest.raises(NotFoundError):
        client.get_stream("s")
    assert client.get_current_version("s") is StreamState.NO_STREAM
    assert client.get_stream_metadata("s") == ({"$tb": 9223372036854775807}, 0)
    client.delete_stream("s", current_version=StreamState.ANY)
    with pytest.raises(WrongCurrentVersionError):
        client.delete_stream("s", current_version=7)
    with pytest.raises(StreamIsDeletedError):
        client.append_to_stream("s", events=[event()], current_version=StreamState.EXISTS)
    client.append_to_stream("s", events=[event("Again")], current_version=StreamState.NO_STREAM)
    events = client.get_stream("s")
    assert [(e.type, e.stream_position) for e in events] == [("Again", 3)]
    assert client.get_stream_metadata("s")[0] == {"$tb": 3}
    with pytest.raises(NotFoundError):
        client.delete_stream("never", current_version=StreamState.ANY)


def test_tombstone(client: KurrentDBClient) -> None:
    client.append_to_stream("s", events=[event()], current_version=StreamState.ANY)
    client.tombstone_stream("s", current_version=0)
    with pytest.raises(StreamIsDeletedError):
        client.get_stream("s")
    with pytest.raises(StreamIsDeletedError):
        client.append_to_stream("s", events=[event()], current_version=StreamState.ANY)
    with pytest.raises(FailedPreconditionError):
        client.append_to_stream("s", events=event(), current_version=StreamState.ANY)
    with pytest.raises(StreamIsDeletedError):
        client.tombstone_stream("s", current_version=StreamState.ANY)
    with pytest.raises(StreamIsDeletedError):
        client.delete_stream("s", current_version=StreamState.ANY)
    with pytest.raises(StreamIsDeletedError):
        client.get_stream_metadata("s")
    client.set_stream_metadata("s", metadata={"after": "tombstone"})
    tombstones = [e for e in client.read_all(filter_exclude=[]) if e.type == "$streamDeleted"]
    assert [e.stream_name for e in tombstones] == ["s"]
    # A stream that never existed: tombstoned with ANY (burned), NotFound with EXISTS.
    with pytest.raises(NotFoundError):
        client.tombstone_stream("never", current_version=StreamState.EXISTS)
    client.tombstone_stream("never", current_version=StreamState.ANY)
    with pytest.raises(StreamIsDeletedError):
        client.append_to_stream("never", events=[event()], current_version=StreamState.ANY)


def test_metadata(client: KurrentDBClient) -> None:
    assert client.get_stream_metadata("s") == ({}, StreamState.NO_STREAM)
    client.set_stream_metadata("s", metadata={"$maxCount": 2, "owner": "me"})
    assert client.get_stream_metadata("s") == ({"$maxCount": 2, "owner": "me"}, 0)
    client.set_stream_metadata("s", metadata={"$maxCount": 2}, current_version=0)
    with pytest.raises(WrongCurrentVersionError):
        client.set_stream_metadata("s", metadata={}, current_version=0)
    client.append_to_stream(
        "s", events=[event() for _ in range(5)], current_version=StreamState.ANY
    )
    assert [e.stream_position for e in client.get_stream("s")] == [3, 4]
    # Metadata alone lets "stream exists" pass.
    client.set_stream_metadata("meta-only", metadata={"k": "v"})
    client.append_to_stream("meta-only", events=event(), current_version=StreamState.EXISTS)


def test_cross_dialect(server: BackgroundServer, client: KurrentDBClient) -> None:
    store = server.server.store

    async def library_append() -> None:
        await store.append_to_stream(
            "lib", ANY_VERSION, [EventData("Made", {"k": "v"}), EventData("Raw", b"\x01")]
        )
        await store.set_stream_metadata("lib", {"owner": "library"})

    server.run(library_append)
    events = client.get_stream("lib")
    assert [(e.type, e.stream_position) for e in events] == [("Made", 0), ("Raw", 1)]
    assert json.loads(events[0].data) == {"k": "v"}
    assert events[0].content_type == "application/json"
    assert events[1].data == b"\x01" and events[1].content_type == "application/octet-stream"
    assert client.get_stream_metadata("lib") == ({"owner": "library"}, 0)

    # The reverse: what a client writes, the library reads at version = revision + 1.
    e1 = event("FromGrpc", b'{"x": [1, 2]}', metadata=b'{"trace": 1}')
    client.append_to_stream(
        "grpc",
        events=[e1, event("Bin", b"\xff", content_type="application/octet-stream")],
        current_version=StreamState.NO_STREAM,
    )
    client.set_stream_metadata("grpc", metadata={"$maxAge": 3600})

    async def library_read() -> tuple[list[object], dict[str, object]]:
        read = await store.read_stream_forward("grpc")
        return [
            (e.event_id, e.stream_version, e.data, e.metadata) for e in read
        ], await store.get_stream_metadata("grpc")

    read, metadata = server.run(library_read)
    assert read == [(e1.id, 1, {"x": [1, 2]}, {"trace": 1}), (read[1][0], 2, b"\xff", None)]
    assert metadata == {"$maxAge": 3600}


async def test_asyncio_client(async_client: AsyncKurrentDBClient) -> None:
    e1, e2 = event("A"), event("B")
    await async_client.append_to_stream("a", events=e1, current_version=StreamState.NO_STREAM)
    position = await async_client.append_to_stream("a", events=[e2], current_version=0)
    events = await async_client.get_stream("a")
    assert [e.id for e in events] == [e1.id, e2.id]
    assert events[-1].commit_position == position
    assert await async_client.get_current_version("a") == 1
    with pytest.raises(WrongCurrentVersionError):
        await async_client.append_to_stream("a", events=[event()], current_version=0)
    read_all = [e async for e in await async_client.read_all()]
    assert [e.type for e in read_all] == ["A", "B"]
    await async_client.delete_stream("a", current_version=1)
    with pytest.raises(NotFoundError):
        await async_client.get_stream("a")
    await async_client.tombstone_stream("a", current_version=StreamState.ANY)
    with pytest.raises(StreamIsDeletedError):
        await async_client.get_stream("a")
    await async_client.set_stream_metadata("b", metadata={"x": 1})
    assert await async_client.get_stream_metadata("b") == ({"x": 1}, 0)


def test_postgres_server(pg_server: BackgroundServer, make_client: MakeClient) -> None:
    client = make_client(pg_server)
    e1 = event()
    client.append_to_stream("s", events=[e1, event()], current_version=StreamState.NO_STREAM)
    assert client.append_to_stream("s", events=[e1], current_version=StreamState.ANY) > 0
    client.delete_stream("s", current_version=1)
    with pytest.raises(NotFoundError):
        client.get_stream("s")
    client.append_to_stream("s", events=event(), current_version=StreamState.NO_STREAM)
    assert [e.stream_position for e in client.get_stream("s")] == [2]
    client.tombstone_stream("s", current_version=StreamState.ANY)
    with pytest.raises(StreamIsDeletedError):
        client.get_stream("s")
    assert [e.type for e in client.read_all(filter_exclude=[])].count("$streamDeleted") == 1


def test_metrics(server: BackgroundServer, client: KurrentDBClient) -> None:
    def sample(name: str) -> float:
        value = server.server.metrics.registry.get_sample_value(name)
        return 0.0 if value is None else value

    client.append_to_stream("m", events=event(), current_version=StreamState.ANY)
    client.append_to_stream("m", events=[event(), event()], current_version=0)
    with pytest.raises(WrongCurrentVersionError):
        client.append_to_stream("m", events=[event()], current_version=0)
    assert sample("evstore_appends_total") == 2
    assert sample("evstore_events_appended_total") == 3
    assert len(client.get_stream("m")) == 3
    assert len(list(client.read_all(limit=2))) == 2
    assert sample("evstore_reads_total") == 2
    assert sample("evstore_events_read_total") == 5


def test_library_links_read_as_link_events(
    server: BackgroundServer, client: KurrentDBClient
) -> None:
    store = server.server.store
    e1, e2 = event("A"), event("B")
    client.append_to_stream("src", events=[e1, e2], current_version=StreamState.NO_STREAM)

    async def link() -> None:
        await store.link_to_stream("linked", ANY_VERSION, [e2.id])

    server.run(link)
    (plain,) = client.get_stream("linked")
    assert (plain.type, plain.data, plain.stream_name, plain.stream_position) == (
        "$>",
        b"1@src",
        "linked",
        0,
    )
    (resolved,) = client.get_stream("linked", resolve_links=True)
    assert (resolved.id, resolved.stream_name, resolved.stream_position) == (e2.id, "src", 1)
    assert resolved.link is not None and resolved.link.id == plain.id
    assert resolved.ack_id == plain.id
    subscription = client.subscribe_to_stream("linked", resolve_links=True, timeout=10)
    try:
        assert next(subscription).id == e2.id
    finally:
        subscription.stop()
