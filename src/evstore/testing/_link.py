"""Linking existing events into other streams.

Reference behaviours: 35-41. 42 (``conn=`` in a rolled-back transaction) is PostgreSQL
only and belongs to that backend's own tests. Where the reference has quirks evstore drops
them (API.md): a link naming any unknown id fails whole, and an empty link is a checked
no-op that creates no stream.
"""

from __future__ import annotations

import uuid

import pytest

from evstore import (
    ANY_VERSION,
    AppendResult,
    AsyncEventStore,
    CannotAppendToAllStreamError,
    DuplicateEventError,
    EventNotFoundError,
    StreamNotFoundError,
    WrongExpectedVersionError,
)
from evstore.testing._support import (
    SuiteBase,
    append_events,
    assert_usable,
    collect,
    fingerprint,
    numbers,
    versions,
)


def _same_event(linked: object, original: object) -> None:
    for name in (
        "event_id",
        "stream_id",
        "stream_version",
        "position",
        "event_type",
        "data",
        "metadata",
        "correlation_id",
        "causation_id",
        "created_at",
    ):
        assert getattr(linked, name) == getattr(original, name), name


class LinkTests(SuiteBase):
    """``link_to_stream``."""

    async def test_link_to_new_stream_keeps_original_fields(self, store: AsyncEventStore) -> None:
        await append_events(store, "source", 3)
        source = await store.read_stream_forward("source")

        result = await store.link_to_stream("target", 0, [e.event_id for e in source])

        assert result == AppendResult(3, source[-1].position)
        linked = await store.read_stream_forward("target")
        assert numbers(linked) == [1, 2, 3]
        for link, original in zip(linked, source, strict=True):
            _same_event(link, original)
        assert await collect(store.stream_forward("target", batch_size=2)) == linked
        assert numbers(await store.read_stream_backward("target")) == [3, 2, 1]

    async def test_link_after_own_events_numbers_by_link_position(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "source", 3)
        await append_events(store, "target", 1, first=100)
        source = await store.read_stream_forward("source")

        with pytest.raises(WrongExpectedVersionError):
            await store.link_to_stream("target", 0, source)
        result = await store.link_to_stream("target", 1, source)

        assert result.stream_version == 4
        events = await store.read_stream_forward("target")
        assert numbers(events) == [1, 2, 3, 4]
        assert versions(events) == [1, 1, 2, 3]
        assert [e.stream_id for e in events] == ["target", "source", "source", "source"]
        for link, original in zip(events[1:], source, strict=True):
            _same_event(link, original)

    async def test_link_accepts_recorded_events_uuids_and_strings(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "source", 3)
        a, b, c = await store.read_stream_forward("source")

        await store.link_to_stream("target", ANY_VERSION, [a, b.event_id, str(c.event_id)])

        linked = await store.read_stream_forward("target")
        assert [e.event_id for e in linked] == [a.event_id, b.event_id, c.event_id]

    async def test_link_never_enters_all_twice(self, store: AsyncEventStore) -> None:
        await append_events(store, "source", 3)
        source = await store.read_stream_forward("source")

        await store.link_to_stream("target-1", 0, source)
        await store.link_to_stream("target-2", 0, source[:2])

        everything = await collect(store.stream_all_forward())
        assert [e.event_id for e in everything] == [e.event_id for e in source]
        assert [e.stream_id for e in everything] == ["source"] * 3
        assert (await store.stream_info("$all")).stream_version == 3
        assert versions(await store.read_stream_forward("source")) == [1, 2, 3]
        assert numbers(await store.read_stream_forward("target-2")) == [1, 2]

    async def test_link_unknown_id_fails_whole_and_links_nothing(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "source", 2)
        await append_events(store, "target", 1)
        source = await store.read_stream_forward("source")
        unknown = uuid.uuid4()
        before = await fingerprint(store)

        with pytest.raises(EventNotFoundError) as raised:
            await store.link_to_stream("target", ANY_VERSION, [source[0], unknown, source[1]])
        assert raised.value.event_ids == [unknown]
        with pytest.raises(EventNotFoundError):
            await store.link_to_stream("new-target", ANY_VERSION, [unknown])

        assert await fingerprint(store) == before
        assert versions(await store.read_stream_forward("target")) == [1]
        with pytest.raises(StreamNotFoundError):
            await store.stream_info("new-target")
        await assert_usable(store)

    async def test_link_same_events_twice_is_duplicate(self, store: AsyncEventStore) -> None:
        await append_events(store, "source", 3)
        source = await store.read_stream_forward("source")
        await store.link_to_stream("target", 0, source)
        before = await fingerprint(store)

        with pytest.raises(DuplicateEventError):
            await store.link_to_stream("target", ANY_VERSION, source)
        with pytest.raises(DuplicateEventError):
            await store.link_to_stream("target", 3, source[1:2])

        assert await fingerprint(store) == before

    async def test_link_repeated_id_within_one_call_is_duplicate(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "source", 1)
        [event] = await store.read_stream_forward("source")
        before = await fingerprint(store)

        with pytest.raises(DuplicateEventError):
            await store.link_to_stream("target", ANY_VERSION, [event, event])

        assert await fingerprint(store) == before

    async def test_link_into_own_source_stream_is_duplicate(self, store: AsyncEventStore) -> None:
        await append_events(store, "source", 2)
        source = await store.read_stream_forward("source")
        before = await fingerprint(store)

        with pytest.raises(DuplicateEventError) as raised:
            await store.link_to_stream("source", ANY_VERSION, source[:1])

        assert raised.value.stream_id == "source"
        assert await fingerprint(store) == before

    async def test_link_same_events_into_two_streams(self, store: AsyncEventStore) -> None:
        await append_events(store, "source", 3)
        source = await store.read_stream_forward("source")

        await store.link_to_stream("target-1", 0, source)
        await store.link_to_stream("target-2", 0, source)

        first = await store.read_stream_forward("target-1")
        second = await store.read_stream_forward("target-2")
        assert first == second
        assert [e.event_id for e in first] == [e.event_id for e in source]

    async def test_link_of_linked_event_links_the_original(self, store: AsyncEventStore) -> None:
        await append_events(store, "source", 2)
        await store.link_to_stream("middle", 0, await store.read_stream_forward("source"))
        from_links = await store.read_stream_forward("middle")

        await store.link_to_stream("last", 0, from_links[::-1])

        events = await store.read_stream_forward("last")
        assert numbers(events) == [1, 2]
        assert [e.stream_id for e in events] == ["source", "source"]
        assert versions(events) == [2, 1]
        assert [e.event_id for e in events] == [e.event_id for e in from_links[::-1]]

    async def test_link_to_all_stream_is_refused(self, store: AsyncEventStore) -> None:
        await append_events(store, "source", 1)
        source = await store.read_stream_forward("source")
        before = await fingerprint(store)

        for expected in (ANY_VERSION, 0, 1):
            with pytest.raises(CannotAppendToAllStreamError):
                await store.link_to_stream("$all", expected, source)

        assert await fingerprint(store) == before

    async def test_link_empty_list_is_a_checked_noop(self, store: AsyncEventStore) -> None:
        await append_events(store, "target", 2)
        before = await fingerprint(store)

        assert await store.link_to_stream("new", 0, []) == AppendResult(0, None)
        assert await store.link_to_stream("target", 2, []) == AppendResult(2, None)
        with pytest.raises(WrongExpectedVersionError):
            await store.link_to_stream("target", 1, [])

        assert await fingerprint(store) == before
        with pytest.raises(StreamNotFoundError):
            await store.stream_info("new")

    async def test_link_from_soft_deleted_source_stays_readable(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "source", 2)
        source = await store.read_stream_forward("source")
        await store.delete_stream("source", ANY_VERSION)

        await store.link_to_stream("target", 0, source)

        linked = await store.read_stream_forward("target")
        assert [e.event_id for e in linked] == [e.event_id for e in source]
        assert [e.data for e in linked] == [e.data for e in source]
