"""Bad input never reaches the database as a crash (API.md, "Errors").

Every case checks that the call raises a ``ValueError`` or ``TypeError`` subclass (a
``ConfigurationError`` for options) that is an ``EventStoreError`` and names the offending
argument, that nothing was written, and that the store still works afterwards.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from evstore import (
    ANY_VERSION,
    AsyncEventStore,
    ConfigurationError,
    EventData,
    EventStoreError,
    SnapshotData,
)
from evstore._validation import MAX_STREAM_ID_LENGTH
from evstore.testing._support import (
    StoreFactory,
    SuiteBase,
    append_events,
    assert_usable,
    fingerprint,
    make_events,
)

# The calls are deliberately ill-typed: they get the store, and EventData, as ``Any``.
Call = Callable[[Any], Any]
AnyEventData: Any = EventData


@dataclass(frozen=True)
class Bad:
    """One bad call: what it does, the error base it must raise, the argument it names."""

    id: str
    call: Call
    error: type[Exception]
    argument: str


def _event() -> list[EventData]:
    return make_events(1)


def _append(stream_id: Any = "stream-1", expected: Any = ANY_VERSION, events: Any = None) -> Call:
    return lambda s: s.append_to_stream(stream_id, expected, _event() if events is None else events)


TOO_LONG = "s" * (MAX_STREAM_ID_LENGTH + 1)
UNSERIALISABLE = object()

STORE_CALLS = [
    # stream ids
    Bad("append_empty_stream_id", _append(""), ValueError, "stream_id"),
    Bad("append_int_stream_id", _append(42), TypeError, "stream_id"),
    Bad("append_none_stream_id", _append(None), TypeError, "stream_id"),
    Bad("append_too_long_stream_id", _append(TOO_LONG), ValueError, "stream_id"),
    Bad("append_nul_in_stream_id", _append("a\x00b"), ValueError, "stream_id"),
    Bad("append_to_all_stream", _append("$all"), ValueError, "$all"),
    Bad(
        "read_too_long_stream_id",
        lambda s: s.read_stream_forward(TOO_LONG),
        ValueError,
        "stream_id",
    ),
    Bad("read_bytes_stream_id", lambda s: s.read_stream_backward(b"x"), TypeError, "stream_id"),
    Bad("info_empty_stream_id", lambda s: s.stream_info(""), ValueError, "stream_id"),
    Bad(
        "delete_empty_stream_id",
        lambda s: s.delete_stream("", ANY_VERSION),
        ValueError,
        "stream_id",
    ),
    Bad("metadata_empty_stream_id", lambda s: s.get_stream_metadata(""), ValueError, "stream_id"),
    Bad("iterate_int_stream_id", lambda s: s.stream_forward(7), TypeError, "stream_id"),
    # expected versions
    Bad("append_negative_expected_version", _append(expected=-1), ValueError, "expected_version"),
    Bad("append_str_expected_version", _append(expected="1"), TypeError, "expected_version"),
    Bad("append_float_expected_version", _append(expected=1.0), TypeError, "expected_version"),
    Bad("append_bool_expected_version", _append(expected=True), TypeError, "expected_version"),
    Bad("append_none_expected_version", _append(expected=None), TypeError, "expected_version"),
    Bad(
        "delete_negative_expected_version",
        lambda s: s.delete_stream("stream-1", -2),
        ValueError,
        "expected_version",
    ),
    Bad(
        "link_str_expected_version",
        lambda s: s.link_to_stream("target", "any", []),
        TypeError,
        "expected_version",
    ),
    Bad("delete_str_hard", lambda s: s.delete_stream("stream-1", 2, hard="yes"), TypeError, "hard"),
    # events
    Bad("append_single_event_not_list", _append(events=_event()[0]), TypeError, "events"),
    Bad("append_str_events", _append(events="events"), TypeError, "events"),
    Bad(
        "append_none_events",
        lambda s: s.append_to_stream("s", ANY_VERSION, None),
        TypeError,
        "events",
    ),
    Bad("append_dict_in_events", _append(events=[{"event_type": "A"}]), TypeError, "events[0]"),
    Bad(
        "append_unserialisable_data",
        _append(events=[*_event(), EventData("A", {"x": UNSERIALISABLE})]),
        ValueError,
        "events[1].data",
    ),
    Bad(
        "append_unserialisable_metadata",
        _append(events=[EventData("A", {}, {1j: 2})]),
        ValueError,
        "events[0].metadata",
    ),
    Bad(
        "append_naive_created_at",
        lambda s: s.append_to_stream("s", 0, _event(), created_at=datetime(2020, 1, 1)),
        ValueError,
        "created_at",
    ),
    Bad(
        "append_str_created_at",
        lambda s: s.append_to_stream("s", 0, _event(), created_at="now"),
        TypeError,
        "created_at",
    ),
    # links
    Bad(
        "link_malformed_uuid",
        lambda s: s.link_to_stream("target", ANY_VERSION, ["not-a-uuid"]),
        ValueError,
        "events_or_event_ids[0]",
    ),
    Bad(
        "link_int_in_ids",
        lambda s: s.link_to_stream("target", ANY_VERSION, [123]),
        TypeError,
        "events_or_event_ids[0]",
    ),
    Bad(
        "link_ids_not_list",
        lambda s: s.link_to_stream("target", ANY_VERSION, "6f1c8e3a-0000-4000-8000-000000000000"),
        TypeError,
        "events_or_event_ids",
    ),
    # counts and start positions
    Bad(
        "read_negative_count",
        lambda s: s.read_stream_forward("stream-1", 0, -1),
        ValueError,
        "count",
    ),
    Bad("read_str_count", lambda s: s.read_stream_forward("stream-1", 0, "10"), TypeError, "count"),
    Bad(
        "read_bool_count",
        lambda s: s.read_stream_backward("stream-1", -1, True),
        TypeError,
        "count",
    ),
    Bad("read_float_count", lambda s: s.read_all_streams_forward(0, 1.5), TypeError, "count"),
    Bad(
        "read_all_negative_count",
        lambda s: s.read_all_streams_backward(-1, -5),
        ValueError,
        "count",
    ),
    Bad(
        "read_start_version_below_minus_one",
        lambda s: s.read_stream_forward("stream-1", -2),
        ValueError,
        "start_version",
    ),
    Bad(
        "read_str_start_version",
        lambda s: s.read_stream_backward("stream-1", "3"),
        TypeError,
        "start_version",
    ),
    Bad(
        "read_all_start_position_below_minus_one",
        lambda s: s.read_all_streams_forward(-2),
        ValueError,
        "start_position",
    ),
    Bad(
        "iterate_start_version_below_minus_one",
        lambda s: s.stream_backward("stream-1", -3),
        ValueError,
        "start_version",
    ),
    Bad(
        "iterate_batch_size_zero",
        lambda s: s.stream_forward("stream-1", batch_size=0),
        ValueError,
        "batch_size",
    ),
    Bad(
        "iterate_all_batch_size_zero",
        lambda s: s.stream_all_backward(batch_size=0),
        ValueError,
        "batch_size",
    ),
    Bad(
        "iterate_str_batch_size",
        lambda s: s.stream_all_forward(batch_size="5"),
        TypeError,
        "batch_size",
    ),
    # pagination
    Bad(
        "paginate_page_size_zero",
        lambda s: s.paginate_streams(page_size=0),
        ValueError,
        "page_size",
    ),
    Bad(
        "paginate_page_number_zero",
        lambda s: s.paginate_streams(page_number=0),
        ValueError,
        "page_number",
    ),
    Bad(
        "paginate_str_page_size",
        lambda s: s.paginate_streams(page_size="2"),
        TypeError,
        "page_size",
    ),
    Bad(
        "paginate_bad_sort_by", lambda s: s.paginate_streams(sort_by="name"), ValueError, "sort_by"
    ),
    Bad(
        "paginate_bad_sort_dir", lambda s: s.paginate_streams(sort_dir="up"), ValueError, "sort_dir"
    ),
    Bad("paginate_int_search", lambda s: s.paginate_streams(search=5), TypeError, "search"),
    # stream metadata
    Bad(
        "metadata_not_dict", lambda s: s.set_stream_metadata("stream-1", [1]), TypeError, "metadata"
    ),
    Bad(
        "metadata_negative_max_count",
        lambda s: s.set_stream_metadata("stream-1", {"$maxCount": -1}),
        ValueError,
        "metadata",
    ),
    Bad(
        "metadata_str_max_age",
        lambda s: s.set_stream_metadata("stream-1", {"$maxAge": "60"}),
        ValueError,
        "metadata",
    ),
    Bad(
        "metadata_unencodable",
        lambda s: s.set_stream_metadata("stream-1", {"x": UNSERIALISABLE}),
        ValueError,
        "metadata",
    ),
    Bad(
        "metadata_negative_expected_version",
        lambda s: s.set_stream_metadata("stream-1", {}, -1),
        ValueError,
        "expected_version",
    ),
    # snapshots
    Bad(
        "snapshot_not_snapshot",
        lambda s: s.record_snapshot({"source_id": "x"}),
        TypeError,
        "snapshot",
    ),
    Bad(
        "snapshot_negative_version",
        lambda s: s.record_snapshot(SnapshotData("a", -1, "T", {})),
        ValueError,
        "snapshot.source_version",
    ),
    Bad(
        "snapshot_empty_source_id",
        lambda s: s.record_snapshot(SnapshotData("", 1, "T", {})),
        ValueError,
        "snapshot.source_id",
    ),
    Bad(
        "snapshot_empty_source_type",
        lambda s: s.record_snapshot(SnapshotData("a", 1, "", {})),
        ValueError,
        "snapshot.source_type",
    ),
    Bad(
        "snapshot_none_data",
        lambda s: s.record_snapshot(SnapshotData("a", 1, "T", None)),
        ValueError,
        "snapshot.data",
    ),
    Bad(
        "snapshot_unserialisable_data",
        lambda s: s.record_snapshot(SnapshotData("a", 1, "T", UNSERIALISABLE)),
        ValueError,
        "snapshot.data",
    ),
    Bad("snapshot_read_empty_source_id", lambda s: s.read_snapshot(""), ValueError, "source_id"),
    Bad("snapshot_delete_int_source_id", lambda s: s.delete_snapshot(1), TypeError, "source_id"),
]

EVENT_DATA = [
    Bad("empty_event_type", lambda _: AnyEventData("", {}), ValueError, "event_type"),
    Bad("none_event_type", lambda _: AnyEventData(None, {}), TypeError, "event_type"),
    Bad(
        "malformed_event_id",
        lambda _: AnyEventData("A", {}, event_id="nope"),
        ValueError,
        "event_id",
    ),
    Bad("int_event_id", lambda _: AnyEventData("A", {}, event_id=12), TypeError, "event_id"),
    Bad(
        "malformed_correlation_id",
        lambda _: AnyEventData("A", {}, correlation_id="1234"),
        ValueError,
        "correlation_id",
    ),
    Bad(
        "malformed_causation_id",
        lambda _: AnyEventData("A", {}, causation_id="zz-not-uuid"),
        ValueError,
        "causation_id",
    ),
]

OPTIONS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown_option", {"colour": "blue"}, "colour"),
    ("bad_schema_name", {"schema": "1-tenant"}, "schema"),
    ("schema_with_quote", {"schema": 'a"; drop table x; --'}, "schema"),
    ("too_long_schema_name", {"schema": "s" * 64}, "schema"),
    ("str_enable_hard_deletes", {"enable_hard_deletes": "yes"}, "enable_hard_deletes"),
    ("zero_timeout", {"timeout": 0}, "timeout"),
    ("str_timeout", {"timeout": "5"}, "timeout"),
    ("zero_pool_size", {"pool_size": 0}, "pool_size"),
    ("bool_pool_size", {"pool_size": True}, "pool_size"),
    ("negative_poll_interval", {"poll_interval": -1}, "poll_interval"),
    ("bad_serializer", {"serializer": object()}, "serializer"),
    ("bad_column_data_type", {"column_data_type": "xml"}, "column_data_type"),
    ("str_notifications", {"notifications": 1}, "notifications"),
]


def _ids(cases: list[Bad]) -> list[str]:
    return [case.id for case in cases]


def _check_error(error: BaseException, case: Bad) -> None:
    assert isinstance(error, case.error), f"{case.id}: expected {case.error.__name__}: {error!r}"
    assert isinstance(error, EventStoreError), f"{case.id}: not an EventStoreError: {error!r}"
    assert case.argument in str(error), f"{case.id}: {error!r} does not name {case.argument}"


async def _raise(call: Call, store: AsyncEventStore) -> BaseException:
    """Run ``call`` to its first effect: await it, or take an iterator's first step."""
    try:
        result = call(store)
        if inspect.isawaitable(result):
            await result
        elif hasattr(result, "__anext__"):
            await anext(result)
    except Exception as error:
        return error
    pytest.fail("no error was raised")


class BadInputTests(SuiteBase):
    """Validation of every argument, before anything is written."""

    @pytest.mark.parametrize("case", STORE_CALLS, ids=_ids(STORE_CALLS))
    async def test_bad_input_store_call_is_refused(self, store: AsyncEventStore, case: Bad) -> None:
        await append_events(store, "stream-1", 2)
        before = await fingerprint(store)

        _check_error(await _raise(case.call, store), case)

        assert await fingerprint(store) == before
        assert await store.get_stream_metadata("stream-1") == {}
        await assert_usable(store)

    @pytest.mark.parametrize("case", EVENT_DATA, ids=_ids(EVENT_DATA))
    async def test_bad_input_event_data_is_refused(self, store: AsyncEventStore, case: Bad) -> None:
        before = await fingerprint(store)

        _check_error(await _raise(case.call, store), case)

        assert await fingerprint(store) == before
        await assert_usable(store)

    @pytest.mark.parametrize(
        ("options", "argument"), [pytest.param(o, a, id=i) for i, o, a in OPTIONS]
    )
    async def test_bad_input_store_option_is_refused(
        self, store_factory: StoreFactory, options: dict[str, Any], argument: str
    ) -> None:
        store = await store_factory()
        before = await fingerprint(store)

        with pytest.raises(ConfigurationError) as raised:
            await store_factory(shared=True, **options)

        assert isinstance(raised.value, ValueError)
        assert argument in str(raised.value)
        assert await fingerprint(store) == before
        await assert_usable(store)

    @pytest.mark.parametrize(
        "url", ["mysql://localhost/db", "memory", "sqlite3:///x.db", "http://example.com", ""]
    )
    async def test_bad_input_unknown_url_is_refused(self, url: str) -> None:
        with pytest.raises(ConfigurationError) as raised:
            AsyncEventStore(url)

        assert isinstance(raised.value, ValueError)
        assert repr(url) in str(raised.value) or "url" in str(raised.value)

    async def test_bad_input_non_string_url_is_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="url"):
            AsyncEventStore(42)  # type: ignore[arg-type]
