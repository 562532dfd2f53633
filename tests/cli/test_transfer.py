"""export and import: a store survives the trip through JSON lines intact."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from evstore import NO_STREAM, EventData, EventStore, RecordedEvent, StreamInfo

from .conftest import Invoke, assert_one_line_error, new_store_url

BASE = datetime(2021, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


def fill_source(url: str) -> None:
    """Interleaved streams, multi-event appends, JSON and bytes payloads, ids, metadata."""
    with EventStore(url) as store:
        store.append_to_stream(
            "order-1",
            NO_STREAM,
            [
                EventData(
                    "OrderPlaced",
                    {"total": 10, "lines": [{"sku": "a", "qty": 2}], "note": "ünïcode ✓"},
                    {"user": "ada"},
                    correlation_id=uuid.uuid4(),
                    causation_id=uuid.uuid4(),
                ),
                EventData("OrderNoted", None, None),
            ],
            created_at=BASE,
        )
        store.append_to_stream(
            "blob-1",
            NO_STREAM,
            [EventData("Blob", b"\x00\xffraw bytes\n", b"\x01meta")],
            created_at=BASE + timedelta(microseconds=1),
        )
        store.append_to_stream(
            "order-1",
            2,
            [EventData("OrderPaid", {"by": "card"}, {"retry": 0}, correlation_id=uuid.uuid4())],
            created_at=BASE + timedelta(days=1),
        )
        # Same stream, two appends with different times in a row: must stay two appends.
        store.append_to_stream(
            "order-1", 3, [EventData("OrderShipped", 1.5)], created_at=BASE + timedelta(days=2)
        )
        store.append_to_stream(
            "order-2", NO_STREAM, [EventData("OrderPlaced", [True, False, None])]
        )
        store.set_stream_metadata("order-2", {"$maxCount": 10, "owner": "ops"})


def snapshot(
    url: str,
) -> tuple[list[RecordedEvent], dict[str, list[RecordedEvent]], list[StreamInfo]]:
    with EventStore(url) as store:
        everything = store.read_all_streams_forward(0, 10_000)
        streams = {
            stream_id: store.read_stream_forward(stream_id)
            for stream_id in {event.stream_id for event in everything}
        }
        infos = store.paginate_streams(page_size=1000, sort_by="stream_id").entries
    return everything, streams, [info for info in infos if info.stream_id != "$all"]


def test_export_import_round_trip_preserves_everything(
    invoke: Invoke, tmp_path: Path, store_url: str
) -> None:
    fill_source(store_url)
    target = new_store_url(tmp_path, "target")
    exported = tmp_path / "backup.jsonl"

    result = invoke("export", "-o", str(exported))
    assert result.exit_code == 0, result.stderr
    assert "exported 7 events, 0 links, 0 deleted streams from" in result.stderr
    result = invoke("import", str(exported), url=target)
    assert result.exit_code == 0, result.stderr
    assert "Imported 7 event(s) and 0 link(s) in 4 stream(s), 0 of them deleted" in result.stdout

    source_all, source_streams, source_infos = snapshot(store_url)
    target_all, target_streams, target_infos = snapshot(target)
    # Full RecordedEvent equality: ids, numbers, stream versions, positions, types, data
    # (JSON and bytes), metadata, correlation/causation ids and created_at.
    assert len(source_all) == 7
    assert target_all == source_all
    assert target_streams == source_streams
    assert target_infos == source_infos
    assert isinstance(target_streams["blob-1"][0].data, bytes)
    with EventStore(target) as store:
        assert store.get_stream_metadata("order-2") == {"$maxCount": 10, "owner": "ops"}


def test_export_format_is_json_lines_with_base64_bytes(invoke: Invoke, store_url: str) -> None:
    fill_source(store_url)
    result = invoke("export")
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["position"] for r in records] == [1, 2, 3, 4, 5, 6, 7]
    first = records[0]
    assert first["created_at"] == "2021-03-04T05:06:07.123456+00:00"
    assert first["correlation_id"] and first["causation_id"]
    blob = records[2]
    assert blob["data_encoding"] == "base64" and blob["metadata_encoding"] == "base64"
    assert "data_encoding" not in first


def test_import_from_stdin(invoke: Invoke, tmp_path: Path, store_url: str) -> None:
    fill_source(store_url)
    exported = invoke("export").stdout
    target = new_store_url(tmp_path, "target")
    result = invoke("import", "-", input=exported, url=target)
    assert result.exit_code == 0, result.stderr
    assert snapshot(target)[0] == snapshot(store_url)[0]


def test_import_refuses_a_non_empty_store(invoke: Invoke, tmp_path: Path, store_url: str) -> None:
    fill_source(store_url)
    exported = tmp_path / "backup.jsonl"
    invoke("export", "-o", str(exported))
    target = new_store_url(tmp_path, "target")
    invoke("append", "already-here", "Something", url=target)

    result = invoke("import", str(exported), url=target)

    assert_one_line_error(result, "refusing to import", "not empty")
    with EventStore(target) as store:
        assert [e.stream_id for e in store.read_all_streams_forward()] == ["already-here"]


def test_import_into_itself_is_refused(invoke: Invoke, tmp_path: Path, store_url: str) -> None:
    fill_source(store_url)
    exported = tmp_path / "backup.jsonl"
    invoke("export", "-o", str(exported))
    assert_one_line_error(invoke("import", str(exported)), "not empty")
    assert len(snapshot(store_url)[0]) == 7


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda rows: [*rows[:1], *rows[2:]], "goes from version 1 to 3"),
        (lambda rows: [*rows, "{not json"], "line 8: not valid JSON"),
        (lambda rows: [rows[0].replace('"event_type"', '"kind"'), *rows[1:]], "line 1"),
        (lambda rows: [*rows[:5], rows[5].replace("+00:00", "")], "no UTC offset"),
        (
            lambda rows: [rows[2].replace('"data_encoding":"base64"', '"data_encoding":"hex"')],
            "hex",
        ),
    ],
)
def test_import_checks_the_whole_file_before_writing(
    invoke: Invoke, tmp_path: Path, store_url: str, mangle: object, message: str
) -> None:
    fill_source(store_url)
    rows = invoke("export").stdout.splitlines()
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join(mangle(rows)) + "\n")  # type: ignore[operator]
    target = new_store_url(tmp_path, "target")
    invoke("init", url=target)

    assert_one_line_error(invoke("import", str(broken), url=target), message)

    assert snapshot(target)[0] == []


def test_export_progress_bar_on_request(invoke: Invoke, store_url: str) -> None:
    fill_source(store_url)
    result = invoke("export", "--progress")
    assert result.exit_code == 0, result.stderr
    assert "exporting" in result.stderr
    assert len(result.stdout.splitlines()) == 7
    quiet = invoke("export", "--no-progress")
    assert "exporting" not in quiet.stderr


def test_export_to_an_unwritable_place_is_one_line_error(
    invoke: Invoke, tmp_path: Path, store_url: str
) -> None:
    fill_source(store_url)
    result = invoke("export", "-o", str(tmp_path / "no" / "such" / "dir" / "x.jsonl"))
    assert_one_line_error(result, "No such file or directory")
    assert not list(tmp_path.glob("**/*.partial"))


def test_import_of_a_missing_file_is_one_line_error(invoke: Invoke, tmp_path: Path) -> None:
    assert_one_line_error(invoke("import", str(tmp_path / "absent.jsonl")), "absent.jsonl")


def test_many_events_import_in_batches(invoke: Invoke, tmp_path: Path, store_url: str) -> None:
    with EventStore(store_url) as store:
        # One append of 2,500 events shares a timestamp: the import splits it in 1,000s.
        store.append_to_stream(
            "big", NO_STREAM, [EventData("N", {"n": n}) for n in range(2500)], created_at=BASE
        )
    exported = tmp_path / "big.jsonl"
    assert invoke("export", "-o", str(exported)).exit_code == 0
    target = new_store_url(tmp_path, "target")
    result = invoke("import", str(exported), "--progress", url=target)
    assert result.exit_code == 0, result.stderr
    assert "importing" in result.stderr
    assert snapshot(target)[0] == snapshot(store_url)[0]
