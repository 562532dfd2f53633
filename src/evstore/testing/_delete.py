"""Soft and hard deletes of streams.

Reference behaviours: 43-46, 49-53, 56-58. Skipped: 47, 48, 54, 55 (subscriptions to
deleted streams), which belong to the subscription suite. The expected-version part of 43,
44, 50 and 51 is covered by the delete table in ``_expected_version``.

evstore drops one reference quirk: hard-deleting a stream that holds links removes only
that stream's own events and the links, never the linked originals.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from evstore import (
    ANY_VERSION,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    AsyncEventStore,
    CannotDeleteAllStreamError,
    NotSupportedError,
    StreamDeletedError,
    StreamNotFoundError,
)
from evstore.testing._support import (
    SuiteBase,
    append_events,
    assert_usable,
    collect,
    fingerprint,
    make_events,
    numbers,
    versions,
)


class DeleteTests(SuiteBase):
    """``delete_stream``."""

    async def test_delete_soft_refuses_reads_writes_and_info(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 3)
        await append_events(store, "source", 1)
        await store.delete_stream("stream-1", 3)

        with pytest.raises(StreamDeletedError) as raised:
            await store.read_stream_forward("stream-1")
        assert raised.value.stream_id == "stream-1"
        with pytest.raises(StreamDeletedError):
            await store.read_stream_backward("stream-1")
        with pytest.raises(StreamDeletedError):
            await store.stream_info("stream-1")
        for iterator in (store.stream_forward("stream-1"), store.stream_backward("stream-1")):
            with pytest.raises(StreamDeletedError):  # before yielding any of its 3 events
                await anext(iterator)
        with pytest.raises(StreamDeletedError):
            await store.append_to_stream("stream-1", 3, make_events(1))
        with pytest.raises(StreamDeletedError):
            await store.link_to_stream(
                "stream-1", ANY_VERSION, await store.read_stream_forward("source")
            )

    async def test_delete_soft_twice_is_stream_deleted(self, hard_store: AsyncEventStore) -> None:
        await append_events(hard_store, "stream-1", 3)
        await hard_store.delete_stream("stream-1", STREAM_EXISTS)

        with pytest.raises(StreamDeletedError):
            await hard_store.delete_stream("stream-1", ANY_VERSION)
        with pytest.raises(StreamDeletedError):
            await hard_store.delete_stream("stream-1", ANY_VERSION, hard=True)

    async def test_delete_soft_keeps_events_in_all_and_in_links(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 3)
        events = await store.read_stream_forward("stream-1")
        await store.link_to_stream("linked", 0, events)

        await store.delete_stream("stream-1", ANY_VERSION)

        assert await store.read_all_streams_forward() == events
        assert await collect(store.stream_all_backward(batch_size=1)) == events[::-1]
        assert [e.event_id for e in await store.read_stream_forward("linked")] == [
            e.event_id for e in events
        ]
        assert (await store.stream_info("$all")).stream_version == 3

    async def test_delete_soft_is_listed_as_deleted(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 3)
        await append_events(store, "stream-2", 1)
        created_at = (await store.stream_info("stream-1")).created_at

        await store.delete_stream("stream-1", ANY_VERSION)

        page = await store.paginate_streams(sort_by="stream_id")
        by_id = {info.stream_id: info for info in page.entries}
        deleted = by_id["stream-1"]
        assert (deleted.status, deleted.stream_version) == ("deleted", 3)
        assert deleted.deleted_at is not None
        assert deleted.deleted_at.utcoffset() == timedelta(0)
        assert deleted.deleted_at >= created_at
        assert deleted.created_at == created_at
        assert (by_id["stream-2"].status, by_id["stream-2"].deleted_at) == ("created", None)

    @pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
    async def test_delete_all_stream_is_refused(
        self, hard_store: AsyncEventStore, hard: bool
    ) -> None:
        await append_events(hard_store, "stream-1", 1)
        before = await fingerprint(hard_store)

        for expected in (ANY_VERSION, NO_STREAM, STREAM_EXISTS, 0, 1):
            with pytest.raises(CannotDeleteAllStreamError):
                await hard_store.delete_stream("$all", expected, hard=hard)

        assert await fingerprint(hard_store) == before

    async def test_delete_hard_when_disabled_is_not_supported(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 3)
        before = await fingerprint(store)

        with pytest.raises(NotSupportedError):
            await store.delete_stream("stream-1", 3, hard=True)
        # The expected-version check comes first (reference §1.6).
        with pytest.raises(StreamNotFoundError):
            await store.delete_stream("missing", STREAM_EXISTS, hard=True)
        with pytest.raises(NotSupportedError):
            await store.delete_stream("missing", ANY_VERSION, hard=True)

        assert await fingerprint(store) == before
        assert versions(await store.read_stream_forward("stream-1")) == [1, 2, 3]

    async def test_delete_hard_removes_events_everywhere(self, hard_store: AsyncEventStore) -> None:
        await append_events(hard_store, "stream-1", 3)
        await append_events(hard_store, "stream-2", 3, first=4)
        doomed = await hard_store.read_stream_forward("stream-1")
        await hard_store.link_to_stream("linked", 0, doomed)

        await hard_store.delete_stream("stream-1", 3, hard=True)

        with pytest.raises(StreamNotFoundError):
            await hard_store.read_stream_forward("stream-1")
        with pytest.raises(StreamNotFoundError):
            await hard_store.stream_info("stream-1")
        with pytest.raises(StreamNotFoundError):
            await anext(hard_store.stream_forward("stream-1"))
        remaining = await hard_store.read_all_streams_forward()
        assert numbers(remaining) == [4, 5, 6]
        assert {e.stream_id for e in remaining} == {"stream-2"}
        assert versions(await hard_store.read_stream_forward("stream-2")) == [1, 2, 3]
        assert await hard_store.read_stream_forward("linked") == []
        assert (await hard_store.stream_info("linked")).stream_version == 3
        assert (await hard_store.stream_info("$all")).stream_version == 6
        page = await hard_store.paginate_streams()
        assert "stream-1" not in {info.stream_id for info in page.entries}

    async def test_delete_hard_twice_is_not_found(self, hard_store: AsyncEventStore) -> None:
        await append_events(hard_store, "stream-1", 3)
        await hard_store.delete_stream("stream-1", ANY_VERSION, hard=True)

        with pytest.raises(StreamNotFoundError):
            await hard_store.delete_stream("stream-1", ANY_VERSION, hard=True)
        with pytest.raises(StreamNotFoundError):
            await hard_store.delete_stream("stream-1", ANY_VERSION)

    async def test_delete_hard_stream_is_recreated_from_version_one(
        self, hard_store: AsyncEventStore
    ) -> None:
        old = await append_events(hard_store, "stream-1", 3)
        await hard_store.delete_stream("stream-1", STREAM_EXISTS, hard=True)
        assert await hard_store.read_all_streams_forward() == []

        result = await hard_store.append_to_stream("stream-1", 0, make_events(1))
        assert result == AppendResult(1, 4), "positions are never reused"
        await append_events(hard_store, "other", 1)

        [event] = await hard_store.read_stream_forward("stream-1")
        assert (event.stream_version, event.position) == (1, 4)
        everything = await hard_store.read_all_streams_forward()
        assert numbers(everything) == [4, 5]
        assert (await hard_store.stream_info("$all")).stream_version == 5
        # The old ids are free again, as if they had never been stored.
        await hard_store.append_to_stream("stream-1", 1, old[:1])

    async def test_delete_hard_keeps_all_version(self, hard_store: AsyncEventStore) -> None:
        await append_events(hard_store, "stream-1", 2)
        await append_events(hard_store, "stream-2", 2)

        await hard_store.delete_stream("stream-2", ANY_VERSION, hard=True)

        info = await hard_store.stream_info("$all")
        assert info.stream_version == 4, "hard deletes never lower $all's version"
        page = await hard_store.paginate_streams(search="$all")
        assert [(e.stream_id, e.stream_version) for e in page.entries] == [("$all", 4)]

    @pytest.mark.parametrize("batch_size", [1, 2, 1000])
    async def test_delete_hard_gaps_are_skipped_by_iterators(
        self, hard_store: AsyncEventStore, batch_size: int
    ) -> None:
        for stream_id in ("s1", "s2", "s3"):
            await append_events(hard_store, stream_id, 3)

        await hard_store.delete_stream("s1", ANY_VERSION, hard=True)
        forward = await collect(hard_store.stream_all_forward(0, batch_size=batch_size))
        assert numbers(forward) == [4, 5, 6, 7, 8, 9]

        await hard_store.delete_stream("s3", ANY_VERSION, hard=True)
        backward = await collect(hard_store.stream_all_backward(-1, batch_size=batch_size))
        assert numbers(backward) == [6, 5, 4]
        forward = await collect(hard_store.stream_all_forward(0, batch_size=batch_size))
        assert numbers(forward) == [4, 5, 6]

    @pytest.mark.parametrize("batch_size", [1, 2, 1000])
    async def test_delete_hard_gaps_in_link_streams_are_skipped(
        self, hard_store: AsyncEventStore, batch_size: int
    ) -> None:
        await append_events(hard_store, "keep", 2)
        await append_events(hard_store, "drop", 2)
        keep = await hard_store.read_stream_forward("keep")
        drop = await hard_store.read_stream_forward("drop")
        await hard_store.link_to_stream("mix", 0, [keep[0], drop[0], drop[1], keep[1]])

        await hard_store.delete_stream("drop", ANY_VERSION, hard=True)

        forward = await collect(hard_store.stream_forward("mix", batch_size=batch_size))
        backward = await collect(hard_store.stream_backward("mix", batch_size=batch_size))
        assert numbers(forward) == [1, 4]
        assert numbers(backward) == [4, 1]
        assert [e.event_id for e in forward] == [keep[0].event_id, keep[1].event_id]
        assert numbers(await hard_store.read_stream_forward("mix", 2, 1)) == [4]

    async def test_delete_hard_of_link_stream_keeps_originals(
        self, hard_store: AsyncEventStore
    ) -> None:
        await append_events(hard_store, "source", 2)
        source = await hard_store.read_stream_forward("source")
        await hard_store.link_to_stream("links", 0, source)
        await append_events(hard_store, "links", 1, first=3)

        await hard_store.delete_stream("links", 3, hard=True)

        assert await hard_store.read_stream_forward("source") == source
        assert numbers(await hard_store.read_all_streams_forward()) == [1, 2]
        await assert_usable(hard_store)
