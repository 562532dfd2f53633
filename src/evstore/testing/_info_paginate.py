"""``stream_info`` and ``paginate_streams``.

Reference behaviours: 59-68. Stream keys (the reference's numeric ``stream_id``) are not
public; their public trace is the creation order that ``created_at`` sorting and every tie
follow. 62's empty created stream cannot exist publicly (an empty append creates nothing).

Pinned orderings: ids compare by code point (``"$all" < "B" < "a"``), NULLs sort last
ascending and first descending, ``created_at`` ties follow the sort direction and every
other tie stays in creation order. ``search`` matches literally (``%`` and ``_`` are not
wildcards) and case-sensitively.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from evstore import (
    ANY_VERSION,
    AsyncEventStore,
    Page,
    StreamDeletedError,
    StreamInfo,
    StreamNotFoundError,
)
from evstore.testing._support import SuiteBase, append_events, make_events


def _ids(page: Page[StreamInfo]) -> list[str]:
    return [info.stream_id for info in page.entries]


async def _streams(store: AsyncEventStore, *sizes: int, prefix: str = "stream-") -> None:
    for number, size in enumerate(sizes, start=1):
        await append_events(store, f"{prefix}{number}", size)


class InfoPaginateTests(SuiteBase):
    """Stream descriptions and listings."""

    async def test_info_all_stream_on_empty_store(self, store: AsyncEventStore) -> None:
        info = await store.stream_info("$all")

        assert (info.stream_id, info.stream_version) == ("$all", 0)
        assert (info.deleted_at, info.status) == (None, "created")
        assert isinstance(info.created_at, datetime)
        assert info.created_at.utcoffset() == timedelta(0)

    async def test_info_stream_versions(self, store: AsyncEventStore) -> None:
        before = datetime.now(UTC)
        await _streams(store, 1, 2, 3)

        for number in (1, 2, 3):
            info = await store.stream_info(f"stream-{number}")
            assert (info.stream_id, info.stream_version) == (f"stream-{number}", number)
            assert (info.status, info.deleted_at) == ("created", None)
            assert before - timedelta(minutes=1) <= info.created_at
            assert info.created_at <= datetime.now(UTC) + timedelta(seconds=1)
        assert (await store.stream_info("$all")).stream_version == 6

    async def test_info_missing_or_deleted_stream_raises(self, hard_store: AsyncEventStore) -> None:
        await _streams(hard_store, 1, 1)
        await hard_store.delete_stream("stream-1", ANY_VERSION)
        await hard_store.delete_stream("stream-2", ANY_VERSION, hard=True)

        with pytest.raises(StreamNotFoundError):
            await hard_store.stream_info("missing")
        with pytest.raises(StreamDeletedError):
            await hard_store.stream_info("stream-1")
        with pytest.raises(StreamNotFoundError):
            await hard_store.stream_info("stream-2")

    async def test_paginate_empty_store_lists_all_stream(self, store: AsyncEventStore) -> None:
        page = await store.paginate_streams()

        assert _ids(page) == ["$all"]
        assert (page.page_number, page.page_size) == (1, 50)
        assert (page.total_entries, page.total_pages) == (1, 1)
        assert page.entries[0] == await store.stream_info("$all")

    async def test_paginate_default_order_is_creation(self, store: AsyncEventStore) -> None:
        await append_events(store, "b", 1)
        await append_events(store, "c", 2)
        await append_events(store, "a", 3)

        page = await store.paginate_streams()

        assert _ids(page) == ["$all", "b", "c", "a"]
        assert page.total_entries == 4
        assert [info.stream_version for info in page.entries] == [6, 1, 2, 3]
        assert page.entries[1] == await store.stream_info("b")

    async def test_paginate_created_at_descending(self, store: AsyncEventStore) -> None:
        await _streams(store, 1, 1, 1)

        page = await store.paginate_streams(sort_by="created_at", sort_dir="desc")

        assert _ids(page) == ["stream-3", "stream-2", "stream-1", "$all"]

    async def test_paginate_created_at_ties_follow_direction(self, store: AsyncEventStore) -> None:
        same_time = datetime(2022, 2, 2, tzinfo=UTC)
        for stream_id in ("x", "y", "z"):
            await store.append_to_stream(stream_id, 0, make_events(1), created_at=same_time)

        ascending = await store.paginate_streams(sort_by="created_at")
        descending = await store.paginate_streams(sort_by="created_at", sort_dir="desc")

        # $all was created with the database, after 2022.
        assert _ids(ascending) == ["x", "y", "z", "$all"]
        assert _ids(descending) == ["$all", "z", "y", "x"]

    async def test_paginate_by_stream_id_uses_code_points(self, store: AsyncEventStore) -> None:
        for stream_id in ("b-2", "a-10", "B-1", "a-9"):
            await append_events(store, stream_id, 1)

        ascending = await store.paginate_streams(sort_by="stream_id")
        descending = await store.paginate_streams(sort_by="stream_id", sort_dir="desc")

        assert _ids(ascending) == ["$all", "B-1", "a-10", "a-9", "b-2"]
        assert _ids(descending) == ["b-2", "a-9", "a-10", "B-1", "$all"]

    async def test_paginate_by_stream_version_ties_in_creation_order(
        self, store: AsyncEventStore
    ) -> None:
        await _streams(store, 2, 1, 2, 9)  # $all ends at 14

        ascending = await store.paginate_streams(sort_by="stream_version")
        descending = await store.paginate_streams(sort_by="stream_version", sort_dir="desc")

        assert _ids(ascending) == ["stream-2", "stream-1", "stream-3", "stream-4", "$all"]
        assert _ids(descending) == ["$all", "stream-4", "stream-1", "stream-3", "stream-2"]

    async def test_paginate_by_deleted_at_nulls_last_ascending(
        self, store: AsyncEventStore
    ) -> None:
        await _streams(store, 1, 1, 1, 1)
        await store.delete_stream("stream-3", ANY_VERSION)
        await store.delete_stream("stream-1", ANY_VERSION)

        ascending = await store.paginate_streams(sort_by="deleted_at")
        descending = await store.paginate_streams(sort_by="deleted_at", sort_dir="desc")

        assert _ids(ascending) == ["stream-3", "stream-1", "$all", "stream-2", "stream-4"]
        assert _ids(descending) == ["$all", "stream-2", "stream-4", "stream-1", "stream-3"]

    async def test_paginate_by_status(self, store: AsyncEventStore) -> None:
        await _streams(store, 1, 1, 1)
        await store.delete_stream("stream-2", ANY_VERSION)

        ascending = await store.paginate_streams(sort_by="status")
        descending = await store.paginate_streams(sort_by="status", sort_dir="desc")

        assert _ids(ascending) == ["$all", "stream-1", "stream-3", "stream-2"]
        assert _ids(descending) == ["stream-2", "$all", "stream-1", "stream-3"]
        assert [info.status for info in ascending.entries] == ["created"] * 3 + ["deleted"]

    async def test_paginate_search_matches_part_of_id(self, store: AsyncEventStore) -> None:
        await _streams(store, 1, 1, 1)

        async def search(text: str) -> Page[StreamInfo]:
            return await store.paginate_streams(search=text)

        assert _ids(await search("$all")) == ["$all"]
        assert _ids(await search("stream-1")) == ["stream-1"]
        page = await search("stream")
        assert _ids(page) == ["stream-1", "stream-2", "stream-3"]
        assert (page.total_entries, page.total_pages) == (3, 1)
        assert _ids(await search("eam-")) == ["stream-1", "stream-2", "stream-3"]
        nothing = await search("STREAM")
        assert (_ids(nothing), nothing.total_entries, nothing.total_pages) == ([], 0, 1)
        assert len((await search("")).entries) == 4, "an empty search filters nothing"

    async def test_paginate_search_is_literal(self, store: AsyncEventStore) -> None:
        for stream_id in ("a_b", "axb", "100%", "1000"):
            await append_events(store, stream_id, 1)

        assert _ids(await store.paginate_streams(search="_")) == ["a_b"]
        assert _ids(await store.paginate_streams(search="0%")) == ["100%"]
        assert _ids(await store.paginate_streams(search="a_")) == ["a_b"]

    async def test_paginate_page_math(self, store: AsyncEventStore) -> None:
        await _streams(store, 1, 2, 3, 4, 5, 6)

        async def page(number: int) -> Page[StreamInfo]:
            return await store.paginate_streams(page_size=2, page_number=number)

        first = await page(1)
        assert (first.total_entries, first.total_pages, first.page_size) == (7, 4, 2)
        assert _ids(first) == ["$all", "stream-1"]
        assert first == await store.paginate_streams(page_size=2)
        assert first.entries[0].stream_version == 21
        assert _ids(await page(2)) == ["stream-2", "stream-3"]
        assert _ids(await page(3)) == ["stream-4", "stream-5"]
        last = await page(4)
        assert (_ids(last), last.page_number) == (["stream-6"], 4)
        beyond = await page(5)
        assert (_ids(beyond), beyond.total_entries, beyond.total_pages) == ([], 7, 4)
        everything = await store.paginate_streams(page_size=7)
        assert (len(everything.entries), everything.total_pages) == (7, 1)

    async def test_paginate_after_soft_and_hard_deletes(self, hard_store: AsyncEventStore) -> None:
        await _streams(hard_store, 1, 2, 3)
        await hard_store.delete_stream("stream-1", ANY_VERSION)
        await hard_store.delete_stream("stream-2", ANY_VERSION, hard=True)

        page = await hard_store.paginate_streams()

        assert _ids(page) == ["$all", "stream-1", "stream-3"]
        assert page.total_entries == 3
        all_info, soft, kept = page.entries
        assert all_info.stream_version == 6
        assert (soft.status, soft.stream_version) == ("deleted", 1)
        assert soft.deleted_at is not None
        assert (kept.status, kept.deleted_at) == ("created", None)
