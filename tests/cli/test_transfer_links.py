"""export and import of what $all does not show: links, soft deletes, hard-delete holes.

Each round trip compares the source and the imported store stream by stream: every entry of
every live stream (event number, ids, origin stream and version, type, payloads, metadata,
correlation/causation ids, created_at), stream versions and statuses in the listing, and
$all. Known differences, asserted as such: ``deleted_at`` is the time of the import's
delete; a stream whose first entry is a link gets the import's time as ``created_at``; and
where the source had hard-delete gaps, $all positions after them are renumbered.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from evstore import NO_STREAM, EventData, EventStore, RecordedEvent, StreamDeletedError
from evstore.cli import _export

from .conftest import SQLITE, Invoke, assert_one_line_error, new_store_url

BASE = datetime(2022, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return BASE + timedelta(minutes=minutes)


def first(store: EventStore, stream_id: str, version: int = 1) -> RecordedEvent:
    return store.read_stream_forward(stream_id, version, 1)[0]


def fill_links_and_deletes(url: str) -> None:
    """Own events, a link-only stream, a mixed stream, soft-deleted streams, bytes, metadata."""
    with EventStore(url) as store:
        store.append_to_stream(
            "order",
            NO_STREAM,
            [EventData("Placed", {"n": 1}), EventData("Paid", {})],
            created_at=at(0),
        )
        store.append_to_stream(
            "blob", NO_STREAM, [EventData("Blob", b"\x00\xff", b"\x01meta")], created_at=at(1)
        )
        order_1, blob_1 = first(store, "order"), first(store, "blob")
        store.link_to_stream("by-type", NO_STREAM, [order_1, blob_1])
        # Own events, then links, then own events, a link, an own event (bytes).
        store.append_to_stream("mixed", NO_STREAM, [EventData("M1", {"x": 1})], created_at=at(2))
        store.link_to_stream("mixed", 1, [order_1, first(store, "order", 2)])
        store.append_to_stream(
            "mixed", 3, [EventData("M4", [1]), EventData("M5", None)], created_at=at(3)
        )
        store.link_to_stream("mixed", 5, [blob_1])
        store.append_to_stream(
            "mixed", 6, [EventData("M7", b"raw", correlation_id=uuid.uuid4())], created_at=at(4)
        )
        store.set_stream_metadata("mixed", {"owner": "ops", "$maxCount": 100})
        # Soft-deleted: a mixed stream ending in a link, and a link-only stream.
        store.append_to_stream("gone", NO_STREAM, [EventData("G1", {})], created_at=at(5))
        store.link_to_stream("gone", 1, [blob_1])
        store.append_to_stream("gone", 2, [EventData("G3", {})], created_at=at(6))
        store.link_to_stream("gone", 3, [order_1])
        store.delete_stream("gone", 4)
        store.link_to_stream("gone-links", NO_STREAM, [order_1, blob_1])
        store.delete_stream("gone-links", 2)
        store.append_to_stream("order", 2, [EventData("Shipped", {})], created_at=at(7))


def fill_hard_delete_holes(url: str) -> None:
    """Links to hard-deleted events (middle, trailing, in a deleted stream), hidden links."""
    with EventStore(url, enable_hard_deletes=True) as store:
        store.append_to_stream("keep", NO_STREAM, [EventData("K1", {})], created_at=at(0))
        store.append_to_stream(
            "temp", NO_STREAM, [EventData("T1", {}), EventData("T2", {})], created_at=at(1)
        )
        keep_1, temp_1, temp_2 = first(store, "keep"), first(store, "temp"), first(store, "temp", 2)
        # "watch" ends up 1 = K1, 2 and 3 = holes, 4 = K2; "mix" has holes at 2 and 4 (last).
        store.link_to_stream("watch", NO_STREAM, [keep_1, temp_1])
        store.link_to_stream("watch", 2, [temp_2.event_id])
        store.append_to_stream("mix", NO_STREAM, [EventData("X1", {})], created_at=at(2))
        store.link_to_stream("mix", 1, [temp_1])
        store.append_to_stream("mix", 2, [EventData("X3", {})], created_at=at(3))
        store.link_to_stream("mix", 3, [temp_2])
        store.append_to_stream("gone", NO_STREAM, [EventData("G1", {})], created_at=at(4))
        store.link_to_stream("gone", 1, [temp_1])
        store.delete_stream("gone", 2)
        # A link hidden by $maxCount: unreadable, though its event still exists.
        store.append_to_stream("capped", NO_STREAM, [EventData("C1", {})], created_at=at(5))
        store.link_to_stream("capped", 1, [keep_1])
        store.append_to_stream(
            "capped", 2, [EventData("C3", {}), EventData("C4", {})], created_at=at(6)
        )
        store.set_stream_metadata("capped", {"$maxCount": 2})
        store.delete_stream("temp", 2, hard=True)
        store.append_to_stream("keep", 1, [EventData("K2", {})], created_at=at(7))
        store.link_to_stream("watch", 3, [first(store, "keep", 2)])


@dataclass
class State:
    """Everything a reader of a store can see."""

    all: list[RecordedEvent]
    listing: dict[str, tuple[int, str]]
    """stream id -> (version, status), from the listing."""
    created: dict[str, datetime]
    entries: dict[str, list[tuple[Any, ...]]]
    """Live streams' full reads, without positions."""
    metadata: dict[str, dict[str, Any]]


def entry(event: RecordedEvent) -> tuple[Any, ...]:
    return (
        event.event_number,
        event.event_id,
        event.stream_id,
        event.stream_version,
        event.event_type,
        event.data,
        event.metadata,
        event.correlation_id,
        event.causation_id,
        event.created_at,
    )


def state(url: str) -> State:
    with EventStore(url) as store:
        infos = store.paginate_streams(page_size=1000).entries
        found = State(store.read_all_streams_forward(0, 10_000), {}, {}, {}, {})
        for info in infos:
            if info.stream_id == "$all":
                continue
            found.listing[info.stream_id] = (info.stream_version, info.status)
            found.created[info.stream_id] = info.created_at
            if info.status == "deleted":
                with pytest.raises(StreamDeletedError):
                    store.read_stream_forward(info.stream_id)
                with pytest.raises(StreamDeletedError):
                    store.append_to_stream(info.stream_id, info.stream_version, [EventData("X", 1)])
                continue
            reads = store.read_stream_forward(info.stream_id, 0, 10_000)
            found.entries[info.stream_id] = [entry(event) for event in reads]
            stream_info = store.stream_info(info.stream_id)
            assert (stream_info.stream_version, stream_info.status) == (
                info.stream_version,
                "created",
            )
            if not info.stream_id.startswith("$$"):
                found.metadata[info.stream_id] = store.get_stream_metadata(info.stream_id)
    return found


def target_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    if kind == "memory":
        return f"memory://cli-target-{uuid.uuid4().hex}"
    return new_store_url(tmp_path, "target")


TARGETS = ["sqlite" if SQLITE else "memory", "memory", "postgres"]


def round_trip(invoke: Invoke, source: str, target: str, tmp_path: Path) -> tuple[str, str]:
    exported = tmp_path / "backup.jsonl"
    result = invoke("export", "-o", str(exported), url=source)
    assert result.exit_code == 0, result.stderr
    imported = invoke("import", str(exported), url=target)
    assert imported.exit_code == 0, imported.stderr
    return result.stderr, imported.stdout


def assert_same_streams(source: State, target: State, link_created: set[str]) -> None:
    assert target.listing == source.listing
    assert target.entries == source.entries
    assert target.metadata == source.metadata
    # created_at comes from the first append; a link cannot carry one, so streams that begin
    # with a link are created at import time.
    assert {k: v for k, v in target.created.items() if k not in link_created} == {
        k: v for k, v in source.created.items() if k not in link_created
    }
    assert all(target.created[k] > source.created[k] for k in link_created)


@pytest.mark.parametrize("kind", TARGETS)
def test_links_and_soft_deletes_survive_the_round_trip(
    invoke: Invoke,
    tmp_path: Path,
    store_url: str,
    kind: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_export, "PAGE_SIZE", 2)  # the listing spans several pages
    fill_links_and_deletes(store_url)
    target = target_url(kind, tmp_path, request)

    summary, imported = round_trip(invoke, store_url, target, tmp_path)

    assert "exported 11 events, 5 links, 2 deleted streams" in summary, summary
    assert "not exported: 4 links of deleted streams" in summary
    assert "links of deleted streams are not exportable" in summary
    assert "Imported 11 event(s) and 5 link(s) in 7 stream(s), 2 of them deleted" in imported
    source_state, target_state = state(store_url), state(target)
    # No hard deletes: $all is identical, positions included.
    assert len(source_state.all) == 11
    assert target_state.all == source_state.all
    assert_same_streams(source_state, target_state, {"by-type", "gone-links"})
    assert source_state.listing["gone"] == (4, "deleted")
    assert [e[0] for e in target_state.entries["mixed"]] == [1, 2, 3, 4, 5, 6, 7]
    assert target_state.entries["mixed"][6][5] == b"raw"


@pytest.mark.parametrize("kind", TARGETS)
def test_hard_delete_holes_and_hidden_links_keep_their_numbers(
    invoke: Invoke, tmp_path: Path, store_url: str, kind: str, request: pytest.FixtureRequest
) -> None:
    fill_hard_delete_holes(store_url)
    target = target_url(kind, tmp_path, request)

    summary, imported = round_trip(invoke, store_url, target, tmp_path)

    assert "exported 9 events, 2 links, 1 deleted streams" in summary, summary
    assert "3 streams have unreadable entries" in summary
    assert "in 6 stream(s), 1 of them deleted" in imported
    source_state, target_state = state(store_url), state(target)
    assert_same_streams(source_state, target_state, {"watch"})
    assert [e[0] for e in target_state.entries["watch"]] == [1, 4]
    assert target_state.listing["watch"] == (4, "created")
    assert [e[0] for e in target_state.entries["mix"]] == [1, 3]
    assert [e[0] for e in target_state.entries["capped"]] == [3, 4]
    # $all: the same events in the same order; positions equal up to the source's first
    # gap (the hard-deleted "temp" at 2 and 3), renumbered after it, and only there.
    # (In $all, event_number is the position: compare it apart.)
    assert [entry(e)[1:] for e in target_state.all] == [entry(e)[1:] for e in source_state.all]
    source_positions = [e.position for e in source_state.all]
    target_positions = [e.position for e in target_state.all]
    first_gap = next(i for i, p in enumerate(source_positions, start=1) if p != i)
    assert first_gap == 2
    assert target_positions[: first_gap - 1] == source_positions[: first_gap - 1]
    assert target_positions == sorted(set(target_positions))


def test_old_files_without_kind_records_still_import(
    invoke: Invoke, tmp_path: Path, store_url: str
) -> None:
    with EventStore(store_url) as store:
        store.append_to_stream("a", NO_STREAM, [EventData("A", {}), EventData("B", {})])
    rows = invoke("export").stdout.splitlines()
    assert all("kind" not in json.loads(row) for row in rows)
    target = new_store_url(tmp_path, "target")
    result = invoke("import", "-", input="\n".join(rows) + "\n", url=target)
    assert result.exit_code == 0, result.stderr
    assert state(target).all == state(store_url).all


def _event(stream_id: str, version: int) -> str:
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "stream_id": stream_id,
            "stream_version": version,
            "event_type": "E",
            "data": {},
            "created_at": "2022-01-02T03:04:05.000000+00:00",
        }
    )


def _link(stream_id: str, number: int, event_id: object) -> str:
    record = {"kind": "link", "stream_id": stream_id, "event_number": number}
    return json.dumps({**record, "event_id": str(event_id)})


def _id(row: str) -> str:
    event_id: str = json.loads(row)["event_id"]
    return event_id


Rows = Callable[[], list[str]]
_A1, _A2, _B1 = _event("a", 1), _event("a", 2), _event("b", 1)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (lambda: [_A1, _link("x", 1, uuid.uuid4())], "line 2: link to event"),
        (lambda: [_A1, _link("a", 2, uuid.uuid4()), _event("a", 3)], "not in the file before a@3"),
        (lambda: [_A1, _A2, _link("a", 2, _id(_B1)), _B1], "makes that entry a link"),
        (lambda: [_A1, _B1, _link("b", 2, _id(_A1)), _link("b", 3, _id(_A1))], "linked twice"),
        (lambda: [_A1, _link("a", 2, _id(_A1))], "links the stream's own event"),
        (
            lambda: [
                _A1,
                _A2,
                '{"kind": "deleted", "stream_id": "a", "stream_version": 1, "deleted_at": null}',
            ],
            "version 1, but has entries up to 2",
        ),
        (
            lambda: [
                _A1,
                '{"kind": "deleted", "stream_id": "gone", "stream_version": 2, "deleted_at": null}',
            ],
            "than the file has other events",
        ),
        (lambda: [_A1, '{"kind": "truncate", "stream_id": "a"}'], "unknown kind 'truncate'"),
        (lambda: [_A1, '{"kind": "link", "stream_id": "a"}'], "misses field(s) event_number"),
        (lambda: [_A1, _link("b", 0, _id(_A1))], "event_number must be an integer >= 1"),
        (lambda: [_A1, _link("b", 1, "nope")], "event_id must be a UUID string"),
    ],
)
def test_import_refuses_bad_stream_records_before_writing(
    invoke: Invoke, tmp_path: Path, rows: Rows, message: str
) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join(rows()) + "\n")
    target = new_store_url(tmp_path, "target")
    invoke("init", url=target)

    assert_one_line_error(invoke("import", str(broken), url=target), message)

    empty = state(target)
    assert (empty.all, empty.listing) == ([], {})


def test_a_link_to_an_unknown_event_leaves_the_store_empty(
    invoke: Invoke, tmp_path: Path, store_url: str
) -> None:
    fill_links_and_deletes(store_url)
    rows = invoke("export").stdout.splitlines()
    # A link of "by-type", which has links only.
    index = next(i for i, row in enumerate(rows) if '"stream_id":"by-type"' in row)
    record = json.loads(rows[index])
    assert record["kind"] == "link"
    unknown = str(uuid.uuid4())
    rows[index] = json.dumps({**record, "event_id": unknown})
    target = new_store_url(tmp_path, "target")
    invoke("init", url=target)

    result = invoke("import", "-", input="\n".join(rows) + "\n", url=target)

    assert_one_line_error(result, f"link to event {unknown}, which is not in the file")
    empty = state(target)
    assert (empty.all, empty.listing) == ([], {})


def test_a_deleted_stream_without_its_entries_is_rebuilt_from_stand_ins(
    invoke: Invoke, tmp_path: Path
) -> None:
    deleted = '{"kind": "deleted", "stream_id": "gone", "stream_version": 1, "deleted_at": null}'
    # "gone" had one entry, a link, not exported: any other event can stand in for it.
    ok = tmp_path / "ok.jsonl"
    ok.write_text("\n".join([_A1, deleted]) + "\n")
    target = new_store_url(tmp_path, "target")
    result = invoke("import", str(ok), url=target)
    assert result.exit_code == 0, result.stderr
    assert state(target).listing == {"a": (1, "created"), "gone": (1, "deleted")}
