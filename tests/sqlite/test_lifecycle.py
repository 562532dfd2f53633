"""Opening, closing and managing SQLite databases; durability settings; lock timeouts."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

import evstore
from evstore import AsyncEventStore, EventData
from evstore.backends.sqlite import SQLiteBackend
from evstore.errors import ConfigurationError, EventStoreTimeoutError, StorageError


def _backend(store: AsyncEventStore) -> SQLiteBackend:
    backend = store._backend
    assert isinstance(backend, SQLiteBackend)
    return backend


async def test_sqlite_writer_is_durable_wal_with_synchronous_full(sqlite_path: Path) -> None:
    async with AsyncEventStore(f"sqlite:///{sqlite_path}") as store:
        backend = _backend(store)
        synchronous = await backend._write(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
        journal = await backend._write(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
        assert synchronous == 2  # FULL
        assert journal == "wal"
    with sqlite3.connect(sqlite_path) as conn:  # WAL is recorded in the file itself
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_sqlite_close_leaves_no_threads_and_reopen_sees_the_data(sqlite_path: Path) -> None:
    before = set(threading.enumerate())
    url = f"sqlite:///{sqlite_path}"
    store = AsyncEventStore(url)
    await store.open()
    await store.append_to_stream("s", evstore.NO_STREAM, [EventData("t", {"n": 1})])
    # Several reads at once so the reader pool starts more than one thread.
    await asyncio.gather(*(store.read_stream_forward("s") for _ in range(8)))
    names = {t.name for t in set(threading.enumerate()) - before}
    assert any(n.startswith("evstore-sqlite-writer") for n in names)
    assert any(n.startswith("evstore-sqlite-reader") for n in names)
    await store.close()
    assert set(threading.enumerate()) - before == set()
    await store.close()  # idempotent

    async with AsyncEventStore(url) as again:
        (event,) = await again.read_stream_forward("s")
        assert event.data == {"n": 1}
    assert set(threading.enumerate()) - before == set()


async def test_sqlite_close_waits_for_queued_writes(sqlite_path: Path) -> None:
    url = f"sqlite:///{sqlite_path}"
    store = AsyncEventStore(url)
    await store.open()
    appends = [
        asyncio.ensure_future(
            store.append_to_stream(f"s{i}", evstore.NO_STREAM, [EventData("t", i)])
        )
        for i in range(100)
    ]
    await asyncio.sleep(0)  # let every append reach the writer's queue
    await store.close()
    results = await asyncio.gather(*appends)
    assert {r.stream_version for r in results} == {1}
    async with AsyncEventStore(url) as again:
        assert len(await again.read_all_streams_forward()) == 100


async def test_sqlite_auto_init_off_refuses_missing_or_uninitialised_database(
    sqlite_path: Path,
) -> None:
    url = f"sqlite:///{sqlite_path}"
    with pytest.raises(ConfigurationError, match="evstore init"):
        await AsyncEventStore(url, auto_init=False).open()
    assert not sqlite_path.exists()
    sqlite3.connect(sqlite_path).close()  # an empty SQLite file, no tables
    with pytest.raises(ConfigurationError, match="evstore init"):
        await AsyncEventStore(url, auto_init=False).open()
    assert await AsyncEventStore.schema_version(url) is None
    await AsyncEventStore.init(url)
    async with AsyncEventStore(url, auto_init=False) as store:
        await store.append_to_stream("s", evstore.NO_STREAM, [EventData("t", 1)])


async def test_sqlite_lifecycle_commands(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "events.db"
    url = f"sqlite:///{path}"
    assert await AsyncEventStore.schema_version(url) is None
    assert not path.parent.exists()  # asking created nothing
    assert "created" in await AsyncEventStore.create(url)
    assert path.exists()
    assert "already exists" in await AsyncEventStore.create(url)
    assert "already initialised" in await AsyncEventStore.init(url)
    assert "already at schema version" in await AsyncEventStore.migrate(url)
    assert await AsyncEventStore.schema_version(url) == "2"

    async with AsyncEventStore(url) as store:
        created = (await store.stream_info("$all")).created_at
        await store.append_to_stream("s", evstore.NO_STREAM, [EventData("t", 1)] * 1)
        await store.record_snapshot(evstore.SnapshotData("x", 1, "T", {}))
    assert "reset" in await AsyncEventStore.reset(url)
    async with AsyncEventStore(url) as store:
        info = await store.stream_info("$all")
        assert (info.stream_version, info.created_at) == (0, created)
        page = await store.paginate_streams()
        assert [i.stream_id for i in page.entries] == ["$all"]
        with pytest.raises(evstore.SnapshotNotFoundError):
            await store.read_snapshot("x")
        result = await store.append_to_stream("s", evstore.NO_STREAM, [EventData("t", 2)])
        assert result == evstore.AppendResult(1, 1)  # positions restart after a reset

    assert "dropped" in await AsyncEventStore.drop(url)
    leftovers = [p.name for p in path.parent.iterdir()]
    assert leftovers == []
    assert "does not exist" in await AsyncEventStore.drop(url)


async def test_sqlite_reset_on_an_open_backend_goes_through_the_writer(sqlite_path: Path) -> None:
    async with AsyncEventStore(f"sqlite:///{sqlite_path}") as store:
        await store.append_to_stream("s", evstore.NO_STREAM, [EventData("t", 1)])
        await _backend(store).reset()
        assert await store.read_all_streams_forward() == []
        assert (await store.stream_info("$all")).stream_version == 0


async def test_sqlite_memory_databases_are_private_and_vanish_on_close() -> None:
    async with (
        AsyncEventStore("sqlite://:memory:") as one,
        AsyncEventStore("sqlite://:memory:") as two,
    ):
        await one.append_to_stream("s", evstore.NO_STREAM, [EventData("t", 1)])
        assert len(await one.read_all_streams_forward()) == 1
        assert await two.read_all_streams_forward() == []
        # Concurrent reads and writes work on the in-memory database too.
        await asyncio.gather(
            *(
                one.append_to_stream("s", evstore.ANY_VERSION, [EventData("t", i)])
                for i in range(20)
            ),
            *(one.read_all_streams_forward() for _ in range(20)),
        )
        assert (await one.stream_info("s")).stream_version == 21
    store = AsyncEventStore("sqlite://:memory:")
    async with store:
        await store.append_to_stream("s", evstore.NO_STREAM, [EventData("t", 1)])
    async with store:
        assert await store.read_all_streams_forward() == []


async def test_sqlite_lock_held_past_timeout_is_a_timeout_error_and_writer_recovers(
    sqlite_path: Path,
) -> None:
    backend = SQLiteBackend(
        sqlite_path.as_posix(), enable_hard_deletes=False, timeout=0.2, poll_interval=0.5
    )
    await backend.open()
    try:
        blocker = sqlite3.connect(sqlite_path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(EventStoreTimeoutError, match="locked") as caught:
            await backend.append("s", evstore.NO_STREAM, [], datetime.now(UTC))
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        blocker.execute("ROLLBACK")
        blocker.close()
        result = await backend.append("s", evstore.NO_STREAM, [], datetime.now(UTC))
        assert result == evstore.AppendResult(0, None)
    finally:
        await backend.close()


async def test_sqlite_unusable_file_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "not-a-database.db"
    path.write_bytes(b"this is not an SQLite database, just some text" * 100)
    with pytest.raises(StorageError) as caught:
        await AsyncEventStore(f"sqlite:///{path}").open()
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)


async def test_sqlite_operations_on_a_closed_backend_raise_storage_error(sqlite_path: Path) -> None:
    backend = SQLiteBackend(
        str(sqlite_path), enable_hard_deletes=False, timeout=1.0, poll_interval=0.5
    )
    with pytest.raises(StorageError, match="not open"):
        await backend.read_all(0, 10, forward=True)
    with pytest.raises(StorageError, match="not open"):
        await backend.append("s", evstore.ANY_VERSION, [], datetime.now(UTC))
