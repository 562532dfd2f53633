"""Stream metadata: ``get_stream_metadata`` / ``set_stream_metadata`` and the keys enforced
on reads (``$maxCount``, ``$maxAge``, ``$tb``). Not in the Elixir reference; API.md.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from evstore import (
    ANY_VERSION,
    NO_STREAM,
    AsyncEventStore,
    StreamExistsError,
    StreamNotFoundError,
    WrongExpectedVersionError,
)
from evstore.testing._support import (
    SuiteBase,
    append_events,
    collect,
    make_events,
    numbers,
)

AGE_TIMEOUT = 10.0
"""Seconds to wait for ``$maxAge`` to hide an event that is one second old."""


async def _visible(store: AsyncEventStore, stream_id: str) -> dict[str, list[int]]:
    """What every read path shows of the stream, by event number."""
    return {
        "forward": numbers(await store.read_stream_forward(stream_id)),
        "backward": numbers(await store.read_stream_backward(stream_id)),
        "from_1": numbers(await store.read_stream_forward(stream_id, 1, 2)),
        "stream_forward": numbers(await collect(store.stream_forward(stream_id, batch_size=1))),
        "stream_backward": numbers(await collect(store.stream_backward(stream_id, batch_size=2))),
    }


def _seen(visible: list[int]) -> dict[str, list[int]]:
    return {
        "forward": visible,
        "backward": visible[::-1],
        "from_1": visible[:2],
        "stream_forward": visible,
        "stream_backward": visible[::-1],
    }


class MetadataTests(SuiteBase):
    """Stream metadata."""

    async def test_metadata_missing_is_empty(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 1)

        assert await store.get_stream_metadata("stream-1") == {}
        assert await store.get_stream_metadata("missing") == {}

    async def test_metadata_round_trips_and_is_replaced(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 2)
        first = {"owner": "team-🎉", "nested": {"a": [1, 2.5, None, True]}, "$maxCount": 10}

        await store.set_stream_metadata("stream-1", first)
        assert await store.get_stream_metadata("stream-1") == first
        await store.set_stream_metadata("stream-1", {"other": "x"})
        assert await store.get_stream_metadata("stream-1") == {"other": "x"}

    async def test_metadata_leaves_the_stream_itself_alone(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 2)
        info = await store.stream_info("stream-1")

        await store.set_stream_metadata("stream-1", {"owner": "x"})
        await store.set_stream_metadata("missing", {"owner": "y"})

        assert await store.stream_info("stream-1") == info
        assert numbers(await store.read_stream_forward("stream-1")) == [1, 2]
        assert await store.get_stream_metadata("missing") == {"owner": "y"}
        with pytest.raises(StreamNotFoundError):
            await store.read_stream_forward("missing")

    async def test_metadata_expected_version(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 5)

        first = await store.set_stream_metadata("stream-1", {"v": 1}, 0)
        assert first.stream_version == 1
        with pytest.raises(WrongExpectedVersionError):
            await store.set_stream_metadata("stream-1", {"v": 2}, 0)
        with pytest.raises(StreamExistsError):
            await store.set_stream_metadata("stream-1", {"v": 2}, NO_STREAM)
        assert await store.get_stream_metadata("stream-1") == {"v": 1}
        second = await store.set_stream_metadata("stream-1", {"v": 2}, 1)
        assert second.stream_version == 2
        third = await store.set_stream_metadata("stream-1", {"v": 3})
        assert third.stream_version == 3
        assert await store.get_stream_metadata("stream-1") == {"v": 3}

    async def test_metadata_max_count_keeps_the_newest(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 5)

        await store.set_stream_metadata("stream-1", {"$maxCount": 2})
        assert await _visible(store, "stream-1") == _seen([4, 5])
        assert (await store.stream_info("stream-1")).stream_version == 5

        await append_events(store, "stream-1", 1, first=6)
        assert await _visible(store, "stream-1") == _seen([5, 6])
        assert numbers(await store.read_stream_backward("stream-1", 5)) == [5]

    async def test_metadata_truncate_before_hides_early_versions(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 5)

        await store.set_stream_metadata("stream-1", {"$tb": 2})

        assert await _visible(store, "stream-1") == _seen([3, 4, 5])
        assert numbers(await store.read_stream_backward("stream-1", 2)) == []

    async def test_metadata_max_age_hides_old_events(self, store: AsyncEventStore) -> None:
        an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
        await store.append_to_stream("stream-1", 0, make_events(2), created_at=an_hour_ago)
        await append_events(store, "stream-1", 2, first=3)

        await store.set_stream_metadata("stream-1", {"$maxAge": 60})

        assert await _visible(store, "stream-1") == _seen([3, 4])

    async def test_metadata_max_age_expires_events_as_time_passes(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 2)
        await store.set_stream_metadata("stream-1", {"$maxAge": 1})

        # Nothing signals that an event has aged: time passing is the condition, so poll
        # for it (at most AGE_TIMEOUT). This is the one test that waits for the clock.
        async def until_hidden() -> None:
            while await store.read_stream_forward("stream-1"):
                await asyncio.sleep(0.05)

        await asyncio.wait_for(until_hidden(), AGE_TIMEOUT)
        assert await _visible(store, "stream-1") == _seen([])
        await append_events(store, "stream-1", 1, first=3)
        assert numbers(await store.read_stream_forward("stream-1")) == [3]

    async def test_metadata_limits_combine(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 6)

        await store.set_stream_metadata("stream-1", {"$tb": 1, "$maxCount": 3})
        assert await _visible(store, "stream-1") == _seen([4, 5, 6])
        await store.set_stream_metadata("stream-1", {"$tb": 4, "$maxCount": 3})
        assert await _visible(store, "stream-1") == _seen([5, 6])

    async def test_metadata_cleared_shows_everything_again(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 4)
        await store.set_stream_metadata("stream-1", {"$maxCount": 1, "$tb": 3})

        await store.set_stream_metadata("stream-1", {})

        assert await _visible(store, "stream-1") == _seen([1, 2, 3, 4])

    async def test_metadata_free_form_keys_are_not_enforced(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 3)

        metadata = {"$acl": {"$r": "nobody"}, "maxCount": 1, "$custom": 0, "tb": 2}
        await store.set_stream_metadata("stream-1", metadata, ANY_VERSION)

        assert await _visible(store, "stream-1") == _seen([1, 2, 3])
        assert await store.get_stream_metadata("stream-1") == metadata
