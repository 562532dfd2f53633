"""Appending: results, ids, timestamps, unicode, empty and very large appends, duplicates.

Reference behaviours (eventstore-behaviour.md §7.2): 1, 9, 10, 13, 14, 15, 16, 34.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from evstore import (
    ANY_VERSION,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    AsyncEventStore,
    DuplicateEventError,
    EventData,
    StreamNotFoundError,
    WrongExpectedVersionError,
)
from evstore.testing._support import (
    USER_METADATA,
    SuiteBase,
    append_events,
    assert_usable,
    collect,
    fingerprint,
    make_events,
    payloads,
    versions,
)

LARGE_APPEND = 8_001
"""Larger than eight 1,000-event chunks, the reference's parameter-limit batching."""

UNICODE_TEXT = "Unicode: ünïcödé, emoji 🎉🧑‍🚀, RTL שלום مرحبا, CJK 漢字かなカナ한국어"


class AppendTests(SuiteBase):
    """``append_to_stream``."""

    async def test_append_any_version_creates_stream(self, store: AsyncEventStore) -> None:
        result = await store.append_to_stream("stream-1", ANY_VERSION, make_events(3))

        assert result == AppendResult(stream_version=3, position=3)
        events = await store.read_stream_forward("stream-1")
        assert versions(events) == [1, 2, 3]
        assert payloads(events) == [{"event": 1}, {"event": 2}, {"event": 3}]

    async def test_append_result_position_is_last_global_position(
        self, store: AsyncEventStore
    ) -> None:
        first = await store.append_to_stream("stream-1", NO_STREAM, make_events(2))
        second = await store.append_to_stream("stream-2", NO_STREAM, make_events(3))
        third = await store.append_to_stream("stream-1", 2, make_events(1, first=3))

        assert (first, second, third) == (
            AppendResult(2, 2),
            AppendResult(3, 5),
            AppendResult(3, 6),
        )
        all_events = await store.read_all_streams_forward()
        assert [e.position for e in all_events] == [1, 2, 3, 4, 5, 6]
        assert [e.event_number for e in all_events] == [1, 2, 3, 4, 5, 6]
        [last] = await store.read_stream_backward("stream-1", count=1)
        assert last.position == third.position
        assert all_events[-1].event_id == last.event_id

    async def test_append_recorded_event_fields(self, store: AsyncEventStore) -> None:
        events = make_events(2)
        await store.append_to_stream("stream-1", 0, events)

        recorded = await store.read_stream_forward("stream-1")
        for original, event in zip(events, recorded, strict=True):
            assert event.event_id == original.event_id
            assert event.stream_id == "stream-1"
            assert event.event_type == original.event_type
            assert event.data == original.data
            assert event.metadata == USER_METADATA
            assert event.correlation_id == original.correlation_id
            assert event.causation_id == original.causation_id
            assert isinstance(event.event_id, uuid.UUID)

    async def test_append_preserves_caller_event_id(self, store: AsyncEventStore) -> None:
        event_id = uuid.uuid4()
        as_text = uuid.uuid4()
        await store.append_to_stream(
            "stream-1",
            0,
            [EventData("A", {}, event_id=event_id), EventData("B", {}, event_id=str(as_text))],
        )

        recorded = await store.read_stream_forward("stream-1")
        assert [e.event_id for e in recorded] == [event_id, as_text]

    async def test_append_missing_correlation_and_causation_stay_none(
        self, store: AsyncEventStore
    ) -> None:
        await store.append_to_stream("stream-1", 0, make_events(1, ids=False))

        [event] = await store.read_stream_forward("stream-1")
        assert event.correlation_id is None
        assert event.causation_id is None
        assert event.metadata == USER_METADATA

    async def test_append_none_metadata_reads_back_as_none(self, store: AsyncEventStore) -> None:
        await store.append_to_stream("stream-1", 0, [EventData("A", {"x": 1})])

        [event] = await store.read_stream_forward("stream-1")
        assert event.metadata is None

    async def test_append_unicode_round_trips(self, store: AsyncEventStore) -> None:
        stream_id = "поток-流-🎉-תור"
        event_type = "Événement-事件-🚀"
        data = {"text": UNICODE_TEXT, UNICODE_TEXT: ["🎉", "漢字"]}
        metadata = {"note": "مرحبا 🧑‍🚀"}
        await store.append_to_stream(stream_id, 0, [EventData(event_type, data, metadata)])

        [event] = await store.read_stream_forward(stream_id)
        assert (event.stream_id, event.event_type) == (stream_id, event_type)
        assert (event.data, event.metadata) == (data, metadata)
        [from_all] = await store.read_all_streams_forward()
        assert from_all.stream_id == stream_id
        assert (await store.stream_info(stream_id)).stream_id == stream_id

    async def test_append_created_at_is_shared_utc_and_recent(self, store: AsyncEventStore) -> None:
        before = datetime.now(UTC)
        await store.append_to_stream("stream-1", 0, make_events(5))
        after = datetime.now(UTC)

        events = await store.read_stream_forward("stream-1")
        stamps = {event.created_at for event in events}
        assert len(stamps) == 1, "every event of one append shares one created_at"
        [created_at] = stamps
        assert created_at.utcoffset() == timedelta(0)
        # Backends may round to the microsecond or keep a slightly different clock: allow
        # a minute either side, as the reference does, but never the future beyond it.
        assert before - timedelta(minutes=1) <= created_at <= after + timedelta(seconds=1)
        info = await store.stream_info("stream-1")
        assert info.created_at.utcoffset() == timedelta(0)

    async def test_append_created_at_never_goes_back(self, store: AsyncEventStore) -> None:
        await store.append_to_stream("stream-1", 0, make_events(1))
        await store.append_to_stream("stream-1", 1, make_events(1))

        first, second = await store.read_stream_forward("stream-1")
        assert first.created_at <= second.created_at

    async def test_append_created_at_override_sets_event_and_stream_time(
        self, store: AsyncEventStore
    ) -> None:
        first = datetime(2020, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
        second = datetime(2021, 6, 7, 8, 9, 10, 111213, tzinfo=timezone(timedelta(hours=2)))
        await store.append_to_stream("stream-1", 0, make_events(2), created_at=first)
        await store.append_to_stream("stream-1", ANY_VERSION, make_events(1), created_at=second)

        events = await store.read_stream_forward("stream-1")
        assert [e.created_at for e in events] == [first, first, second]
        assert all(e.created_at.utcoffset() == timedelta(0) for e in events)
        info = await store.stream_info("stream-1")
        assert info.created_at == first, "a later append never changes the stream's created_at"

    async def test_append_empty_list_to_new_stream_writes_nothing(
        self, store: AsyncEventStore
    ) -> None:
        before = await fingerprint(store)

        for expected in (ANY_VERSION, NO_STREAM, 0):
            result = await store.append_to_stream("stream-1", expected, [])
            assert result == AppendResult(0, None)

        assert await fingerprint(store) == before
        with pytest.raises(StreamNotFoundError):
            await store.stream_info("stream-1")

    async def test_append_empty_list_still_checks_expected_version(
        self, store: AsyncEventStore
    ) -> None:
        with pytest.raises(StreamNotFoundError):
            await store.append_to_stream("missing", STREAM_EXISTS, [])
        with pytest.raises(WrongExpectedVersionError):
            await store.append_to_stream("missing", 1, [])
        await append_events(store, "stream-1", 2)
        before = await fingerprint(store)

        with pytest.raises(WrongExpectedVersionError):
            await store.append_to_stream("stream-1", 1, [])
        assert await store.append_to_stream("stream-1", 2, []) == AppendResult(2, None)
        assert await store.append_to_stream("stream-1", STREAM_EXISTS, []) == AppendResult(2, None)
        assert await fingerprint(store) == before

    async def test_append_duplicate_id_within_batch_writes_nothing(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "other", 1)
        before = await fingerprint(store)
        event_id = uuid.uuid4()
        batch = [EventData("A", {}, event_id=event_id), EventData("B", {}, event_id=event_id)]

        with pytest.raises(DuplicateEventError) as raised:
            await store.append_to_stream("stream-1", ANY_VERSION, batch)

        assert raised.value.event_id == event_id
        assert raised.value.stream_id == "stream-1"
        assert await fingerprint(store) == before
        await assert_usable(store)

    async def test_append_id_stored_in_other_stream_is_duplicate(
        self, store: AsyncEventStore
    ) -> None:
        [stored] = make_events(1)
        await store.append_to_stream("stream-1", 0, [stored])
        before = await fingerprint(store)
        again = EventData("Other", {"x": 1}, event_id=stored.event_id)

        with pytest.raises(DuplicateEventError) as raised:
            await store.append_to_stream("stream-2", ANY_VERSION, [*make_events(2), again])

        assert raised.value.event_id == stored.event_id
        assert await fingerprint(store) == before
        with pytest.raises(StreamNotFoundError):
            await store.read_stream_forward("stream-2")
        await assert_usable(store)

    async def test_append_same_events_twice_is_duplicate(self, store: AsyncEventStore) -> None:
        events = make_events(3)
        await store.append_to_stream("stream-1", 0, events)
        before = await fingerprint(store)

        with pytest.raises(DuplicateEventError):
            await store.append_to_stream("stream-1", 3, events)
        with pytest.raises(DuplicateEventError):
            await store.append_to_stream("stream-1", ANY_VERSION, events[1:2])

        assert await fingerprint(store) == before
        assert versions(await store.read_stream_forward("stream-1")) == [1, 2, 3]

    @pytest.mark.slow
    async def test_append_large_batch_is_atomic_and_contiguous(
        self, store: AsyncEventStore
    ) -> None:
        events = make_events(LARGE_APPEND, ids=False)
        result = await store.append_to_stream("big", NO_STREAM, events)

        assert result == AppendResult(LARGE_APPEND, LARGE_APPEND)
        everything = await collect(store.stream_all_forward(batch_size=1000))
        assert [e.position for e in everything] == list(range(1, LARGE_APPEND + 1))
        assert [e.event_id for e in everything] == [e.event_id for e in events]
        read = await store.read_stream_forward("big", 0, LARGE_APPEND + 10)
        assert versions(read) == list(range(1, LARGE_APPEND + 1))
        assert (await store.stream_info("$all")).stream_version == LARGE_APPEND

    @pytest.mark.slow
    async def test_append_large_batch_failing_at_its_end_writes_nothing(
        self, store: AsyncEventStore
    ) -> None:
        [stored] = make_events(1)
        await store.append_to_stream("small", 0, [stored])
        before = await fingerprint(store)
        events = make_events(LARGE_APPEND - 1, ids=False)

        for last in (events[0], stored):  # repeated within the batch; stored elsewhere
            duplicate = EventData("Dup", {}, event_id=last.event_id)
            with pytest.raises(DuplicateEventError):
                await store.append_to_stream("big", ANY_VERSION, [*events, duplicate])
            assert await fingerprint(store) == before

        with pytest.raises(StreamNotFoundError):
            await store.stream_info("big")
        result = await store.append_to_stream("big", NO_STREAM, events)
        assert result == AppendResult(LARGE_APPEND - 1, LARGE_APPEND)
