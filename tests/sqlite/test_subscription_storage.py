"""The SQLite backend's half of subscriptions: checkpoints, parked events, ownership locks and
the change signal.

Checkpoints and parked events run one script of operations against SQLite and the reference
memory backend and compare every result; targeted tests cover persistence, reset, migration
of a version-1 database, lock files (between stores, within a store, across a killed
process) and the change signal.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import evstore
from evstore import AsyncEventStore, EventData
from evstore.backends.base import ParkedEntry, StorageBackend, SubscriptionRecord
from evstore.backends.memory import MemoryBackend
from evstore.backends.signal import ChangeSignal
from evstore.backends.sqlite import SQLiteBackend, _sql
from evstore.errors import ConfigurationError, StorageError

SRC = Path(evstore.__file__).resolve().parent.parent

T0 = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)


def _backend(store: AsyncEventStore) -> SQLiteBackend:
    backend = store._backend
    assert isinstance(backend, SQLiteBackend)
    return backend


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _entry(
    number: int,
    position: int,
    reason: str = "nack",
    retries: int = 0,
    *,
    minutes: int = 0,
    replay: bool = False,
) -> ParkedEntry:
    return ParkedEntry(number, position, reason, retries, T0 + timedelta(minutes=minutes), replay)


def _records(records: list[SubscriptionRecord], since: datetime) -> list[tuple[Any, ...]]:
    """Records without their creation time, after checking it is a recent UTC time."""
    now = datetime.now(UTC)
    for record in records:
        assert record.created_at.tzinfo is not None
        assert record.created_at.utcoffset() == timedelta(0)
        assert since - timedelta(seconds=1) <= record.created_at <= now
    return [(r.stream_id, r.subscription_name, r.last_seen, r.parked_count) for r in records]


async def _script(backend: StorageBackend) -> list[Any]:
    """Every checkpoint and parking operation, with each observable result recorded."""
    since = datetime.now(UTC)
    out: list[Any] = []
    # Find-or-create: a new row starts at start_from, an existing one keeps its checkpoint.
    out.append(await backend.subscription_checkpoint("orders", "billing", 0))
    out.append(await backend.subscription_checkpoint("orders", "billing", 7))
    out.append(await backend.subscription_checkpoint("$all", "audit", 42))
    await backend.store_checkpoint("orders", "billing", 5)
    out.append(await backend.subscription_checkpoint("orders", "billing", 0))
    await backend.store_checkpoint("orders", "nobody", 9)  # no row: nothing is created
    # Parking, and parking again: the re-parked entry is replaced and moves to the end.
    await backend.park(
        "orders",
        "billing",
        [_entry(3, 10), _entry(4, 11, "max retries", 10, minutes=1), _entry(6, 15, "späť")],
    )
    await backend.park("orders", "billing", [_entry(3, 10, "nack again", 2, minutes=5)])
    await backend.park("$all", "transient", [_entry(8, 8)])  # parked without a row
    out.append(await backend.parked("orders", "billing"))
    out.append(await backend.request_replay("orders", "billing"))
    out.append(await backend.request_replay("orders", "billing"))  # already flagged: counted
    out.append(await backend.request_replay("orders", "nobody"))
    await backend.park("orders", "billing", [_entry(9, 20, minutes=9)])  # not flagged
    out.append(await backend.parked("orders", "billing"))
    await backend.unpark("orders", "billing", [4, 99])
    await backend.unpark("orders", "billing", [])
    out.append(await backend.parked("orders", "billing"))
    out.append(_records(await backend.list_subscriptions(), since))
    # Deleting removes the row and its parked events, nobody else's.
    await backend.delete_subscription("orders", "billing")
    out.append(await backend.parked("orders", "billing"))
    out.append(_records(await backend.list_subscriptions(), since))
    out.append(await backend.subscription_checkpoint("orders", "billing", 3))
    out.append(await backend.parked("$all", "transient"))
    await backend.delete_subscription("$all", "transient")  # no row, parked events go
    out.append(await backend.parked("$all", "transient"))
    await backend.delete_subscription("nowhere", "nothing")
    out.append(_records(await backend.list_subscriptions(), since))
    return out


async def test_sqlite_checkpoints_and_parking_match_the_memory_backend(sqlite_path: Path) -> None:
    memory = MemoryBackend()
    await memory.open()
    expected = await _script(memory)
    async with AsyncEventStore(_url(sqlite_path)) as store:
        actual = await _script(_backend(store))
    assert actual == expected
    # The reference itself says what the contract means, spelled out:
    assert actual[:4] == [0, 0, 42, 5]
    assert [e.event_number for e in actual[4]] == [4, 6, 3]
    assert actual[4][2] == _entry(3, 10, "nack again", 2, minutes=5)
    assert actual[5:8] == [3, 3, 0]
    assert [(e.event_number, e.replay_requested) for e in actual[8]] == [
        (4, True),
        (6, True),
        (3, True),
        (9, False),
    ]
    assert [e.event_number for e in actual[9]] == [6, 3, 9]
    assert actual[10] == [("$all", "audit", 42, 0), ("orders", "billing", 5, 3)]
    assert actual[11] == []
    assert actual[12] == [("$all", "audit", 42, 0)]
    assert actual[13] == 3
    assert actual[14] == [_entry(8, 8)] and actual[15] == []


async def test_sqlite_checkpoints_persist_and_keep_their_creation_time(sqlite_path: Path) -> None:
    url = _url(sqlite_path)
    async with AsyncEventStore(url) as store:
        backend = _backend(store)
        assert await backend.subscription_checkpoint("orders", "billing", 2) == 2
        (created,) = await backend.list_subscriptions()
        await backend.store_checkpoint("orders", "billing", 17)
        await backend.park("orders", "billing", [_entry(5, 12, retries=3)])
    async with AsyncEventStore(url) as store:
        backend = _backend(store)
        assert await backend.subscription_checkpoint("orders", "billing", 0) == 17
        (record,) = await backend.list_subscriptions()
        assert record == SubscriptionRecord("orders", "billing", 17, created.created_at, 1)
        # Times round-trip to the microsecond.
        assert await backend.parked("orders", "billing") == [_entry(5, 12, retries=3)]


async def test_sqlite_two_stores_creating_one_subscription_agree_on_its_start(
    sqlite_path: Path,
) -> None:
    url = _url(sqlite_path)
    async with AsyncEventStore(url) as one, AsyncEventStore(url) as two:
        for round_ in range(20):
            name = f"sub-{round_}"
            first, second = await asyncio.gather(
                _backend(one).subscription_checkpoint("s", name, 3),
                _backend(two).subscription_checkpoint("s", name, 8),
            )
            assert first == second and first in (3, 8)
        assert len(await _backend(one).list_subscriptions()) == 20


async def test_sqlite_reset_clears_subscriptions_and_parked_events(sqlite_path: Path) -> None:
    url = _url(sqlite_path)
    async with AsyncEventStore(url) as store:
        backend = _backend(store)
        await backend.subscription_checkpoint("orders", "billing", 4)
        await backend.park("orders", "billing", [_entry(1, 1), _entry(2, 2)])
        await backend.park("$all", "transient", [_entry(3, 3)])
        await backend.reset()  # open: through the writer
        assert await backend.list_subscriptions() == []
        assert await backend.parked("orders", "billing") == []
        assert await backend.parked("$all", "transient") == []
        await backend.subscription_checkpoint("orders", "billing", 1)
        await backend.park("orders", "billing", [_entry(7, 7)])
    assert "reset" in await AsyncEventStore.reset(url)  # closed: its own connection
    async with AsyncEventStore(url) as store:
        backend = _backend(store)
        assert await backend.list_subscriptions() == []
        assert await backend.parked("orders", "billing") == []
        await backend.park("orders", "billing", [_entry(7, 7)])
    with sqlite3.connect(sqlite_path) as conn:
        # The parked order's sequence restarted with the rest.
        assert conn.execute("SELECT parked_key FROM parked_events").fetchall() == [(1,)]


def _version_1_database(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database as the previous release (schema version 1) left it, with some data."""
    with monkeypatch.context() as patch:
        patch.setattr(_sql, "SCHEMA_VERSION", "1")
        patch.setattr(_sql, "MIGRATIONS", _sql.MIGRATIONS[:1])

        async def fill() -> None:
            async with AsyncEventStore(_url(path)) as store:
                await store.append_to_stream("orders", evstore.NO_STREAM, [EventData("t", 1)])
                await _backend(store).subscription_checkpoint("orders", "billing", 1)

        with asyncio.Runner() as runner:
            runner.run(fill())
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_migrations").fetchall() == [("1",)]
        assert _has_parked_table(conn) is False


def _has_parked_table(conn: sqlite3.Connection) -> bool:
    return conn.execute(_sql.TABLE_EXISTS, ("parked_events",)).fetchone() is not None


@pytest.fixture
def version_1_path(sqlite_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # On a thread of its own, away from the test's event loop; result() re-raises its errors.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(_version_1_database, sqlite_path, monkeypatch).result()
    return sqlite_path


async def _check_migrated(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        versions = conn.execute("SELECT version FROM schema_migrations ORDER BY version")
        assert versions.fetchall() == [("1",), ("2",)]
        assert _has_parked_table(conn)
    async with AsyncEventStore(_url(path)) as store:
        backend = _backend(store)
        (event,) = await store.read_stream_forward("orders")
        assert event.data == 1
        assert await backend.subscription_checkpoint("orders", "billing", 0) == 1
        await backend.park("orders", "billing", [_entry(1, 1)])
        assert [r.parked_count for r in await backend.list_subscriptions()] == [1]
    assert await AsyncEventStore.schema_version(_url(path)) == _sql.SCHEMA_VERSION == "2"


async def test_sqlite_migrate_brings_a_version_1_database_to_version_2(
    version_1_path: Path,
) -> None:
    url = _url(version_1_path)
    assert await AsyncEventStore.schema_version(url) == "1"
    message = await AsyncEventStore.migrate(url)
    assert (
        message
        == f"The SQLite database {str(version_1_path)!r} has been migrated to schema version 2."
    )
    await _check_migrated(version_1_path)
    assert "already at schema version 2" in await AsyncEventStore.migrate(url)


async def test_sqlite_opening_a_version_1_database_migrates_it(version_1_path: Path) -> None:
    async with AsyncEventStore(_url(version_1_path)):
        pass
    await _check_migrated(version_1_path)


async def test_sqlite_opening_a_version_1_database_without_auto_init_asks_for_migrate(
    version_1_path: Path,
) -> None:
    store = AsyncEventStore(_url(version_1_path), auto_init=False)
    with pytest.raises(ConfigurationError, match=r"schema version 1.*needs 2.*evstore migrate"):
        await store.open()
    with sqlite3.connect(version_1_path) as conn:
        assert not _has_parked_table(conn)  # nothing changed


async def test_sqlite_a_new_database_records_both_versions(sqlite_path: Path) -> None:
    assert "initialised" in await AsyncEventStore.init(_url(sqlite_path))
    with sqlite3.connect(sqlite_path) as conn:
        versions = conn.execute("SELECT version FROM schema_migrations ORDER BY version")
        assert versions.fetchall() == [("1",), ("2",)]
        assert _has_parked_table(conn)


# -- ownership locks -----------------------------------------------------------------


def _lock_file(db: Path, stream_id: str, name: str) -> Path:
    digest = hashlib.sha256(f"{stream_id}\0{name}".encode()).hexdigest()
    return Path(f"{os.path.realpath(db)}.locks") / f"{digest}.lock"


async def test_sqlite_lock_excludes_another_store_and_the_same_store(sqlite_path: Path) -> None:
    url = _url(sqlite_path)
    async with AsyncEventStore(url) as one, AsyncEventStore(url) as two:
        first, second = _backend(one), _backend(two)
        lock = await first.try_lock_subscription("orders", "billing")
        assert lock is not None and not lock.lost
        assert _lock_file(sqlite_path, "orders", "billing").is_file()
        assert await second.try_lock_subscription("orders", "billing") is None
        assert await first.try_lock_subscription("orders", "billing") is None
        # Other names, and the same name on another stream, are other locks.
        shipping = await second.try_lock_subscription("orders", "shipping")
        everything = await second.try_lock_subscription("$all", "billing")
        assert shipping is not None and everything is not None
        assert await first.try_lock_subscription("orders", "shipping") is None

        await lock.release()
        await lock.release()  # idempotent
        taken = await second.try_lock_subscription("orders", "billing")
        assert taken is not None
        assert await first.try_lock_subscription("orders", "billing") is None
        # A held lock is never lost: wait_lost does not return.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(taken.wait_lost(), 0.05)
        assert not taken.lost


async def test_sqlite_closing_a_store_releases_its_locks(sqlite_path: Path) -> None:
    url = _url(sqlite_path)
    async with AsyncEventStore(url) as other:
        store = AsyncEventStore(url)
        await store.open()
        held = [await _backend(store).try_lock_subscription("orders", name) for name in ("a", "b")]
        assert all(lock is not None for lock in held)
        assert await _backend(other).try_lock_subscription("orders", "a") is None
        await store.close()
        assert await _backend(other).try_lock_subscription("orders", "a") is not None
        assert await _backend(other).try_lock_subscription("orders", "b") is not None
        for lock in held:
            assert lock is not None and not lock.lost
            await lock.release()  # after the close: harmless
        assert await _backend(other).try_lock_subscription("orders", "b") is None


async def test_sqlite_lock_needs_an_open_store(sqlite_path: Path) -> None:
    store = AsyncEventStore(_url(sqlite_path))
    with pytest.raises(StorageError, match="not open"):
        await _backend(store).try_lock_subscription("orders", "billing")


async def test_sqlite_drop_removes_the_lock_files(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with AsyncEventStore(_url(path)) as store:
        assert await _backend(store).try_lock_subscription("orders", "billing") is not None
    assert (tmp_path / "events.db.locks").is_dir()
    assert "dropped" in await AsyncEventStore.drop(_url(path))
    assert list(tmp_path.iterdir()) == []


async def test_sqlite_memory_database_locks_are_per_database() -> None:
    one = AsyncEventStore("sqlite://:memory:")
    async with one, AsyncEventStore("sqlite://:memory:") as two:
        lock = await _backend(one).try_lock_subscription("orders", "billing")
        assert lock is not None and not lock.lost
        assert await _backend(one).try_lock_subscription("orders", "billing") is None
        # Another in-memory database has its own subscriptions.
        assert await _backend(two).try_lock_subscription("orders", "billing") is not None
        await lock.release()
        again = await _backend(one).try_lock_subscription("orders", "billing")
        assert again is not None
    async with one:  # the close released it
        assert await _backend(one).try_lock_subscription("orders", "billing") is not None


_CHILD = """
import asyncio, sys
from evstore import AsyncEventStore

async def main(url: str) -> None:
    async with AsyncEventStore(url) as store:
        theirs = await store._backend.try_lock_subscription("orders", "parent")
        mine = await store._backend.try_lock_subscription("orders", "child")
        print("parent", "free" if theirs else "busy", flush=True)
        print("child", "held" if mine else "busy", flush=True)
        await asyncio.Event().wait()

asyncio.run(main(sys.argv[1]))
"""


async def test_sqlite_lock_of_a_killed_process_is_free_at_once(sqlite_path: Path) -> None:
    url = _url(sqlite_path)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    async with AsyncEventStore(url) as store:
        backend = _backend(store)
        assert await backend.try_lock_subscription("orders", "parent") is not None
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CHILD, url, env=env, stdout=asyncio.subprocess.PIPE
        )
        try:
            assert child.stdout is not None
            lines = [
                (await asyncio.wait_for(child.stdout.readline(), 30)).decode().split()
                for _ in range(2)
            ]
            assert lines == [["parent", "busy"], ["child", "held"]]
            assert await backend.try_lock_subscription("orders", "child") is None
        finally:
            child.send_signal(signal.SIGKILL)
            assert await asyncio.wait_for(child.wait(), 30) == -signal.SIGKILL
        # No clean-up ran in the child: the kernel released the lock with its descriptors.
        assert await backend.try_lock_subscription("orders", "child") is not None


# -- the change signal ---------------------------------------------------------------


async def _woken_by(changes: ChangeSignal, write: Awaitable[Any]) -> None:
    """Park a waiter on the signal, run ``write``, and check that it woke the waiter."""
    seen = changes.generation
    waiter = asyncio.ensure_future(changes.wait(seen, 10))
    await asyncio.sleep(0)  # one step: the waiter is now parked on the signal
    assert not waiter.done()
    await write
    assert await asyncio.wait_for(waiter, 10) is True
    assert changes.generation > seen


async def test_sqlite_changes_wake_a_waiter_after_an_append_and_after_a_link(
    sqlite_path: Path,
) -> None:
    async with AsyncEventStore(_url(sqlite_path)) as store:
        changes = _backend(store).changes
        await _woken_by(
            changes, store.append_to_stream("a", evstore.NO_STREAM, [EventData("t", 1)])
        )
        (first,) = await store.read_stream_forward("a")
        await _woken_by(changes, store.link_to_stream("b", evstore.NO_STREAM, [first]))
        assert [e.event_number for e in await store.read_stream_forward("b")] == [1]


async def test_sqlite_changes_stay_quiet_when_nothing_was_written(sqlite_path: Path) -> None:
    async with AsyncEventStore(_url(sqlite_path)) as store:
        changes = _backend(store).changes
        await store.append_to_stream("a", evstore.NO_STREAM, [EventData("t", 1)])
        seen = changes.generation
        with pytest.raises(evstore.WrongExpectedVersionError):
            await store.append_to_stream("a", 5, [EventData("t", 2)])
        await store.append_to_stream("a", evstore.ANY_VERSION, [])  # checks only
        await store.record_snapshot(evstore.SnapshotData("x", 1, "T", {}))
        assert changes.generation == seen


async def test_sqlite_poll_interval_option_is_the_backend_attribute(sqlite_path: Path) -> None:
    async with AsyncEventStore(_url(sqlite_path), poll_interval=0.125) as store:
        assert _backend(store).poll_interval == 0.125


async def test_sqlite_writer_runs_on_commit_even_when_the_caller_stopped_waiting(
    sqlite_path: Path,
) -> None:
    async with AsyncEventStore(_url(sqlite_path)) as store:
        writer = _backend(store)._writer
        assert writer is not None
        started, proceed = threading.Event(), threading.Event()
        committed = asyncio.Event()

        def slow(conn: sqlite3.Connection) -> None:
            started.set()
            proceed.wait(30)
            conn.execute("INSERT INTO meta (key, value) VALUES ('probe', 1)")

        future = writer.submit(slow, on_commit=committed.set)
        assert await asyncio.to_thread(started.wait, 30)
        future.cancel()  # the caller gives up while its write runs
        proceed.set()
        await asyncio.wait_for(committed.wait(), 30)
        with sqlite3.connect(sqlite_path) as conn:
            assert conn.execute("SELECT value FROM meta WHERE key = 'probe'").fetchone() == (1,)

        # A write that fails commits nothing and calls nothing.
        calls: list[str] = []

        def failing(conn: sqlite3.Connection) -> None:
            raise ValueError("no")

        with pytest.raises(ValueError):
            await writer.submit(failing, on_commit=lambda: calls.append("called"))
        assert calls == []
