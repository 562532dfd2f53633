"""Several stores open at once: isolated on different databases, shared on one.

Reference behaviours: 149 and 151, as far as they concern events (subscriptions have their
own suite), and API.md's "several stores may be open at once".
"""

from __future__ import annotations

import pytest

from evstore import (
    ANY_VERSION,
    AppendResult,
    NotSupportedError,
    SnapshotData,
    StreamDeletedError,
    StreamNotFoundError,
    WrongExpectedVersionError,
)
from evstore.testing._support import (
    StoreFactory,
    SuiteBase,
    append_events,
    make_events,
    numbers,
    versions,
)


class StoresTests(SuiteBase):
    """More than one store at a time."""

    async def test_stores_on_different_databases_are_isolated(
        self, store_factory: StoreFactory
    ) -> None:
        first = await store_factory()
        second = await store_factory()

        await append_events(first, "stream-1", 3)
        assert await second.append_to_stream("stream-1", 0, make_events(1)) == AppendResult(1, 1)
        await append_events(first, "only-first", 1)

        assert versions(await first.read_stream_forward("stream-1")) == [1, 2, 3]
        assert versions(await second.read_stream_forward("stream-1")) == [1]
        with pytest.raises(StreamNotFoundError):
            await second.read_stream_forward("only-first")
        assert (await first.stream_info("$all")).stream_version == 4
        assert (await second.stream_info("$all")).stream_version == 1
        assert (await second.paginate_streams()).total_entries == 2
        assert numbers(await second.read_all_streams_forward()) == [1]

    async def test_stores_on_one_database_share_everything(
        self, store_factory: StoreFactory
    ) -> None:
        first = await store_factory()
        second = await store_factory(shared=True)

        await first.append_to_stream("stream-1", 0, make_events(2))
        with pytest.raises(WrongExpectedVersionError):
            await second.append_to_stream("stream-1", 0, make_events(1))
        result = await second.append_to_stream("stream-1", 2, make_events(1))

        assert result == AppendResult(3, 3)
        assert await first.read_stream_forward("stream-1") == (
            await second.read_stream_forward("stream-1")
        )
        assert await first.read_all_streams_forward() == await second.read_all_streams_forward()
        assert await first.paginate_streams() == await second.paginate_streams()
        await second.delete_stream("stream-1", 3)
        with pytest.raises(StreamDeletedError):
            await first.read_stream_forward("stream-1")

    async def test_stores_on_one_database_keep_their_own_options(
        self, store_factory: StoreFactory
    ) -> None:
        plain = await store_factory()
        hard = await store_factory(shared=plain, enable_hard_deletes=True)
        await append_events(plain, "stream-1", 1)

        with pytest.raises(NotSupportedError):
            await plain.delete_stream("stream-1", ANY_VERSION, hard=True)
        await hard.delete_stream("stream-1", ANY_VERSION, hard=True)

        with pytest.raises(StreamNotFoundError):
            await plain.read_stream_forward("stream-1")

    async def test_stores_reopened_database_keeps_its_events(
        self, store_factory: StoreFactory
    ) -> None:
        first = await store_factory()
        events = await append_events(first, "stream-1", 2)
        await first.record_snapshot(SnapshotData("stream-1", 2, "Snap", {"n": 2}))
        await first.close()
        await first.close()  # closing twice is harmless

        again = await store_factory(shared=first)

        read = await again.read_stream_forward("stream-1")
        assert [e.event_id for e in read] == [e.event_id for e in events]
        assert await again.append_to_stream("stream-1", 2, make_events(1)) == AppendResult(3, 3)
        assert (await again.read_snapshot("stream-1")).data == {"n": 2}
