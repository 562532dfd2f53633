"""append, read, streams and info, through the CLI on a real store."""

from __future__ import annotations

import json
import uuid
from typing import Any

from .conftest import Invoke, assert_one_line_error


def lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_append_prints_the_append_result(invoke: Invoke) -> None:
    first = invoke("append", "order-1", "OrderPlaced", '{"total": 10}', "-e", "no_stream")
    second = invoke("append", "order-1", "OrderPaid", "--expected-version", "1")
    assert first.exit_code == 0, first.stderr
    assert lines(first.stdout) == [
        {"stream_id": "order-1", "events": 1, "stream_version": 1, "position": 1}
    ]
    assert lines(second.stdout) == [
        {"stream_id": "order-1", "events": 1, "stream_version": 2, "position": 2}
    ]


def test_append_stores_ids_metadata_and_default_data(invoke: Invoke) -> None:
    event_id, correlation, causation = (str(uuid.uuid4()) for _ in range(3))
    result = invoke(
        "append", "s", "Happened",
        "--metadata", '{"user": "ada"}',
        "--event-id", event_id,
        "--correlation-id", correlation,
        "--causation-id", causation,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    [event] = lines(invoke("read", "s").stdout)
    assert event["event_id"] == event_id
    assert event["data"] == {}
    assert event["metadata"] == {"user": "ada"}
    assert (event["correlation_id"], event["causation_id"]) == (correlation, causation)


def test_append_expected_version_keywords(invoke: Invoke) -> None:
    assert invoke("append", "s", "A", "-e", "stream_exists").exit_code == 1
    assert invoke("append", "s", "A", "-e", "no_stream").exit_code == 0
    assert invoke("append", "s", "B", "-e", "stream_exists").exit_code == 0
    assert invoke("append", "s", "C", "-e", "ANY").exit_code == 0
    assert_one_line_error(invoke("append", "s", "D", "-e", "no_stream"), "already exists")


def test_append_conflict_is_one_line_error(invoke: Invoke) -> None:
    invoke("append", "s", "A")
    result = invoke("append", "s", "B", "-e", "0")
    assert_one_line_error(result, "'s'", "version 1", "expected 0")
    assert len(lines(invoke("read", "s").stdout)) == 1


def test_append_from_stdin_is_one_atomic_append(invoke: Invoke) -> None:
    given_id = str(uuid.uuid4())
    stdin = "\n".join(
        [
            json.dumps({"event_type": "A", "data": {"n": 1}, "event_id": given_id}),
            "",
            json.dumps({"event_type": "B", "data": [1, 2], "metadata": {"m": True}}),
            json.dumps({"event_type": "C", "data": "aGVsbG8=", "data_encoding": "base64"}),
        ]
    )
    result = invoke("append", "s", "--stdin", "-e", "no_stream", input=stdin)
    assert result.exit_code == 0, result.stderr
    assert lines(result.stdout)[0]["events"] == 3
    events = lines(invoke("read", "s").stdout)
    assert [e["event_type"] for e in events] == ["A", "B", "C"]
    assert events[0]["event_id"] == given_id
    assert events[1]["metadata"] == {"m": True}
    assert (events[2]["data"], events[2]["data_encoding"]) == ("aGVsbG8=", "base64")
    # One append: one timestamp for all three.
    assert len({e["created_at"] for e in events}) == 1


def test_append_from_stdin_refuses_a_bad_line_and_writes_nothing(invoke: Invoke) -> None:
    invoke("init")
    stdin = '{"event_type": "A", "data": 1}\n{"event_type": "B", "dta": 2}\n'
    assert_one_line_error(invoke("append", "s", "--stdin", input=stdin), "line 2", "dta")
    assert_one_line_error(invoke("append", "s", "--stdin", input="[1]\n"), "line 1")
    assert_one_line_error(invoke("read", "s"), "does not exist")


def test_append_usage_errors_exit_2(invoke: Invoke) -> None:
    for args in (
        ["append", "s", "T", "{not json"],
        ["append", "s", "T", "-e", "sometimes"],
        ["append", "s", "T", "-e", "-1"],
        ["append", "s"],
        ["append", "s", "T", "--stdin"],
    ):
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_read_directions_start_and_count(invoke: Invoke) -> None:
    for n in range(1, 6):
        invoke("append", "s", f"E{n}", json.dumps({"n": n}))
    invoke("append", "other", "X")

    def numbers(*args: str) -> list[int]:
        result = invoke("read", *args)
        assert result.exit_code == 0, result.stderr
        return [e["event_number"] for e in lines(result.stdout)]

    assert numbers("s") == [1, 2, 3, 4, 5]
    assert numbers("s", "--start", "3") == [3, 4, 5]
    assert numbers("s", "--count", "2") == [1, 2]
    assert numbers("s", "--backward") == [5, 4, 3, 2, 1]
    assert numbers("s", "--backward", "--start", "2") == [2, 1]
    assert numbers("s", "--backward", "--count", "1") == [5]
    assert numbers("s", "--count", "0") == []
    assert numbers("$all") == [1, 2, 3, 4, 5, 6]
    assert numbers("$all", "--backward", "--count", "2") == [6, 5]
    assert numbers("$all", "--start", "6") == [6]


def test_read_prints_every_field(invoke: Invoke) -> None:
    invoke("append", "s", "Typed", '{"a": [1, "x", null]}', "--metadata", '{"k": 1}')
    [event] = lines(invoke("read", "s").stdout)
    assert set(event) == {
        "event_id", "event_number", "stream_id", "stream_version", "position", "event_type",
        "data", "metadata", "correlation_id", "causation_id", "created_at",
    }  # fmt: skip
    assert event["data"] == {"a": [1, "x", None]}
    # ISO 8601 with microseconds and a UTC offset.
    assert event["created_at"][19] == "." and event["created_at"].endswith("+00:00")


def test_read_table_format(invoke: Invoke) -> None:
    invoke("append", "s", "Something", '{"a": 1}')
    result = invoke("read", "s", "--format", "table")
    assert result.exit_code == 0, result.stderr
    assert "Something" in result.stdout and "s@1" in result.stdout
    assert not result.stdout.lstrip().startswith("{")


def test_read_missing_stream_is_one_line_error(invoke: Invoke) -> None:
    invoke("append", "present", "A")
    assert_one_line_error(invoke("read", "absent"), "stream 'absent' does not exist")
    assert_one_line_error(invoke("read", "absent", "--count", "0"), "does not exist")


def test_streams_pages_search_and_sort(invoke: Invoke) -> None:
    for name in ("order-2", "order-1", "cart-1"):
        invoke("append", name, "A")
    invoke("append", "order-1", "B")

    def ids(*args: str) -> list[str]:
        result = invoke("streams", *args)
        assert result.exit_code == 0, result.stderr
        return [s["stream_id"] for s in lines(result.stdout)]

    assert ids() == ["$all", "order-2", "order-1", "cart-1"]
    assert ids("--page-size", "2", "--page", "2") == ["order-1", "cart-1"]
    assert ids("--search", "order", "--sort-by", "stream_id") == ["order-1", "order-2"]
    assert ids("--sort-by", "stream_id", "--sort-dir", "desc")[0] == "order-2"
    versions = {s["stream_id"]: s["stream_version"] for s in lines(invoke("streams").stdout)}
    assert versions == {"$all": 4, "order-2": 1, "order-1": 2, "cart-1": 1}
    table = invoke("streams", "--format", "table", "--page-size", "2").stdout
    assert "page 1 of 2" in table and "4 stream(s)" in table


def test_info_of_a_stream_and_of_all(invoke: Invoke) -> None:
    invoke("append", "s", "A")
    invoke("append", "s", "B")
    [info] = lines(invoke("info", "s").stdout)
    assert (info["stream_id"], info["stream_version"], info["status"]) == ("s", 2, "created")
    assert info["deleted_at"] is None
    [everything] = lines(invoke("info", "$all").stdout)
    assert everything["stream_version"] == 2
    table = invoke("info", "s", "--format", "table").stdout
    assert "stream_version" in table and "created" in table
    assert_one_line_error(invoke("info", "nope"), "does not exist")
