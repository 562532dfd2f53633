"""Snapshots: ``record_snapshot``, ``read_snapshot``, ``delete_snapshot``.

Reference behaviours: 142-146, and §1.11 (independent of streams; ``created_at`` keeps the
first recording's time).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from evstore import AsyncEventStore, SnapshotData, SnapshotNotFoundError
from evstore.testing._support import StoreFactory, SuiteBase, append_events


def _snapshot(version: int = 1, **changes: object) -> SnapshotData:
    values: dict[str, object] = {
        "source_id": "account-1",
        "source_version": version,
        "source_type": "Account",
        "data": {"balance": 100 * version, "owner": "Zoë 🎉"},
        "metadata": {"user": "user@example.com"},
    }
    values.update(changes)
    return SnapshotData(**values)  # type: ignore[arg-type]


def _without_time(snapshot: SnapshotData) -> tuple[object, ...]:
    return (
        snapshot.source_id,
        snapshot.source_version,
        snapshot.source_type,
        snapshot.data,
        snapshot.metadata,
    )


class SnapshotTests(SuiteBase):
    """Snapshots."""

    async def test_snapshot_missing_raises_not_found(self, store: AsyncEventStore) -> None:
        with pytest.raises(SnapshotNotFoundError) as raised:
            await store.read_snapshot("account-1")

        assert raised.value.source_id == "account-1"

    async def test_snapshot_round_trips(self, store: AsyncEventStore) -> None:
        before = datetime.now(UTC)
        await store.record_snapshot(_snapshot())

        read = await store.read_snapshot("account-1")

        assert _without_time(read) == _without_time(_snapshot())
        assert read.created_at is not None
        assert read.created_at.utcoffset() == timedelta(0)
        assert before - timedelta(minutes=1) <= read.created_at
        assert read.created_at <= datetime.now(UTC) + timedelta(seconds=1)

    async def test_snapshot_without_metadata_and_with_bytes(self, store: AsyncEventStore) -> None:
        await store.record_snapshot(_snapshot(metadata=None))
        await store.record_snapshot(
            _snapshot(source_id="raw", data=b"\x00\xffsnap", metadata=b"\x01")
        )

        assert (await store.read_snapshot("account-1")).metadata is None
        raw = await store.read_snapshot("raw")
        assert (raw.data, raw.metadata) == (b"\x00\xffsnap", b"\x01")

    async def test_snapshot_recording_again_overwrites(self, store: AsyncEventStore) -> None:
        await store.record_snapshot(_snapshot())
        first = await store.read_snapshot("account-1")
        replacement = _snapshot(
            2, source_type="AccountV2", data={"balance": 7}, metadata={"by": "migration"}
        )

        await store.record_snapshot(replacement)

        read = await store.read_snapshot("account-1")
        assert _without_time(read) == _without_time(replacement)
        assert read.created_at == first.created_at, "created_at keeps the first recording"

    async def test_snapshot_delete(self, store: AsyncEventStore) -> None:
        await store.record_snapshot(_snapshot())
        await store.record_snapshot(_snapshot(source_id="account-2"))

        await store.delete_snapshot("account-1")
        await store.delete_snapshot("account-1")  # deleting a missing snapshot is fine
        await store.delete_snapshot("never-recorded")

        with pytest.raises(SnapshotNotFoundError):
            await store.read_snapshot("account-1")
        assert (await store.read_snapshot("account-2")).source_id == "account-2"
        await store.record_snapshot(_snapshot(3))
        assert (await store.read_snapshot("account-1")).source_version == 3

    async def test_snapshot_independent_of_streams(self, hard_store: AsyncEventStore) -> None:
        await append_events(hard_store, "account-1", 2)
        await hard_store.record_snapshot(_snapshot(5))  # no version check against the stream

        await hard_store.delete_stream("account-1", 2, hard=True)

        assert (await hard_store.read_snapshot("account-1")).source_version == 5
        assert await hard_store.read_all_streams_forward() == []

    async def test_snapshot_isolated_per_database(self, store_factory: StoreFactory) -> None:
        first = await store_factory()
        second = await store_factory()
        same_as_first = await store_factory(shared=True)

        await first.record_snapshot(_snapshot())

        with pytest.raises(SnapshotNotFoundError):
            await second.read_snapshot("account-1")
        shared = await same_as_first.read_snapshot("account-1")
        assert _without_time(shared) == _without_time(_snapshot())
        await second.record_snapshot(_snapshot(9))
        assert (await first.read_snapshot("account-1")).source_version == 1
