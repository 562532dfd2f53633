"""The backend half of subscriptions on PostgreSQL: checkpoints, parked events, ownership
locks and change notifications (LISTEN), against a real server.

Where the memory backend (the reference) defines the answer, the same calls run on both and
the results are compared.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import asyncpg
import pytest

import evstore
from evstore import NO_STREAM, AsyncEventStore, EventData
from evstore.backends.base import ParkedEntry, StorageBackend, SubscriptionRecord
from evstore.backends.postgres import PostgresBackend
from evstore.backends.postgres._sql import SCHEMA_VERSION, Sql
from evstore.backends.postgres.locks import lock_key

from . import _old_schema

SRC = Path(evstore.__file__).resolve().parent.parent
WAIT = 10.0
"""Seconds any awaited condition may take before the test fails."""
QUIET = 30.0
"""A poll interval no test reaches: the sequencer runs no idle cycle meanwhile, so a wake-up
can only come from what the test is about."""


def _backend(store: AsyncEventStore) -> Any:
    return store._backend


def _pg(store: AsyncEventStore) -> PostgresBackend:
    return cast(PostgresBackend, store._backend)


async def _eventually(check: Callable[[], Awaitable[bool]], within: float = WAIT) -> None:
    """Return once ``check()`` is true; fail the test after ``within`` seconds."""
    async with asyncio.timeout(within):
        while not await check():
            await asyncio.sleep(0.02)


async def _pids(conn: asyncpg.Connection, application_name: str) -> list[int]:
    """Server pids of this database's sessions with ``application_name``."""
    rows = await conn.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = $1",
        application_name,
    )
    return [row[0] for row in rows]


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[AsyncEventStore]:
    async with AsyncEventStore(postgres_url) as opened:
        yield opened


@pytest.fixture
async def memory() -> AsyncIterator[AsyncEventStore]:
    async with AsyncEventStore("memory://") as opened:
        yield opened


def _entry(number: int, reason: str = "nack", *, retries: int = 0, minute: int = 0) -> ParkedEntry:
    parked_at = datetime(2024, 5, 1, 12, minute, 7, 123456, tzinfo=UTC)
    return ParkedEntry(number, number + 100, reason, retries, parked_at)


# -- checkpoints ---------------------------------------------------------------------------


async def test_subscription_storage_checkpoint_created_kept_updated_deleted(
    store: AsyncEventStore, raw_conn: asyncpg.Connection
) -> None:
    backend: StorageBackend = _backend(store)
    before = datetime.now(UTC)
    assert await backend.subscription_checkpoint("s", "sub", 5) == 5
    assert await backend.subscription_checkpoint("s", "sub", 9) == 5  # existing row wins
    await backend.store_checkpoint("s", "sub", 12)
    assert await backend.subscription_checkpoint("s", "sub", 0) == 12
    await backend.store_checkpoint("s", "missing", 3)  # no row: nothing happens
    [record] = await backend.list_subscriptions()
    assert (record.stream_id, record.subscription_name, record.last_seen) == ("s", "sub", 12)
    assert record.created_at.tzinfo is not None
    assert before - timedelta(seconds=5) <= record.created_at <= datetime.now(UTC)

    await backend.delete_subscription("s", "sub")
    assert await backend.list_subscriptions() == []
    assert await backend.subscription_checkpoint("s", "sub", 7) == 7  # starts fresh
    await backend.delete_subscription("s", "never-existed")
    nullable = await raw_conn.fetchval(
        "SELECT is_nullable FROM information_schema.columns "
        "WHERE table_name = 'subscriptions' AND column_name = 'last_seen'"
    )
    assert nullable == "NO"


async def test_subscription_storage_concurrent_creations_agree_on_one_row(
    store: AsyncEventStore, postgres_url: str
) -> None:
    async with AsyncEventStore(postgres_url) as other:
        backends: list[StorageBackend] = [_backend(store), _backend(other)]
        found = await asyncio.gather(
            *(backends[i % 2].subscription_checkpoint("$all", "race", i) for i in range(20))
        )
    assert len(set(found)) == 1
    assert [r.last_seen for r in await _backend(store).list_subscriptions()] == [found[0]]


# -- parked events and listing, compared with the memory backend -----------------------------


async def _park_scenario(backend: StorageBackend) -> list[Any]:
    """Every parking call, with the observable result after each step."""
    seen: list[Any] = []
    for stream_id, name in [("b", "x"), ("$all", "a"), ("a", "a"), ("a", "Z")]:
        await backend.subscription_checkpoint(stream_id, name, 0)
    await backend.park("a", "a", [_entry(3), _entry(1), _entry(2)])
    seen.append(await backend.parked("a", "a"))
    await backend.park("a", "a", [_entry(3, "max retries", retries=10, minute=5)])
    seen.append(await backend.parked("a", "a"))  # re-parked: replaced, moved to the end
    await backend.park("a", "a", [_entry(5), _entry(4), _entry(5, "again", minute=9)])
    seen.append(await backend.parked("a", "a"))
    await backend.park("b", "x", [_entry(8)])
    await backend.park("t", "transient", [_entry(1)])  # parked without a subscription row
    await backend.park("a", "a", [])
    seen.append(await backend.list_subscriptions())
    seen.append(await backend.request_replay("a", "a"))
    seen.append(await backend.parked("a", "a"))
    await backend.park("a", "a", [_entry(6)])  # parked after the replay: not requested
    seen.append(await backend.parked("a", "a"))
    await backend.unpark("a", "a", [1, 4, 99])
    await backend.unpark("a", "a", [])
    seen.append(await backend.parked("a", "a"))
    seen.append(await backend.parked("t", "transient"))
    seen.append(await backend.request_replay("none", "none"))
    seen.append(await backend.parked("none", "none"))
    await backend.delete_subscription("a", "a")
    seen.append(await backend.parked("a", "a"))
    seen.append(await backend.parked("b", "x"))
    seen.append(await backend.list_subscriptions())
    return seen


def _without_created_at(step: Any) -> Any:
    if isinstance(step, list) and step and isinstance(step[0], SubscriptionRecord):
        return [(r.stream_id, r.subscription_name, r.last_seen, r.parked_count) for r in step]
    return step


async def test_subscription_storage_parking_matches_the_memory_backend(
    store: AsyncEventStore, memory: AsyncEventStore
) -> None:
    got = await _park_scenario(_backend(store))
    expected = await _park_scenario(_backend(memory))
    assert [_without_created_at(s) for s in got] == [_without_created_at(s) for s in expected]
    # Spot checks, so the test does not only hold because both are wrong the same way.
    assert [e.event_number for e in got[0]] == [3, 1, 2]
    assert [e.event_number for e in got[1]] == [1, 2, 3]
    assert got[1][-1].reason == "max retries" and got[1][-1].retry_count == 10
    assert [(e.event_number, e.reason) for e in got[2]][-2:] == [(4, "nack"), (5, "again")]
    assert _without_created_at(got[3]) == [
        ("$all", "a", 0, 0),
        ("a", "Z", 0, 0),
        ("a", "a", 0, 5),
        ("b", "x", 0, 1),
    ]
    assert got[4] == 5 and all(e.replay_requested for e in got[5])
    assert [(e.event_number, e.replay_requested) for e in got[6]][-1] == (6, False)
    assert [e.event_number for e in got[7]] == [2, 3, 5, 6]
    assert got[1][0].parked_at == datetime(2024, 5, 1, 12, 0, 7, 123456, tzinfo=UTC)


async def test_subscription_storage_reset_clears_subscriptions_and_parked_events(
    store: AsyncEventStore, postgres_url: str
) -> None:
    backend: StorageBackend = _backend(store)
    await backend.subscription_checkpoint("s", "sub", 3)
    await backend.park("s", "sub", [_entry(1)])
    await backend.park("t", "transient", [_entry(2)])
    await AsyncEventStore.reset(postgres_url)
    assert await backend.list_subscriptions() == []
    assert await backend.parked("s", "sub") == []
    assert await backend.parked("t", "transient") == []
    await backend.park("s", "sub", [_entry(4)])
    assert [e.event_number for e in await backend.parked("s", "sub")] == [4]


async def test_subscription_storage_drop_removes_the_parked_events_table(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    await AsyncEventStore.init(postgres_url)
    assert await raw_conn.fetchval("SELECT to_regclass('public.parked_events') IS NOT NULL")
    await AsyncEventStore.drop(postgres_url)
    assert await raw_conn.fetchval("SELECT to_regclass('public.parked_events') IS NULL")


# -- migration from version 2 ---------------------------------------------------------------------


async def test_subscription_storage_migration_from_version_2_keeps_data(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    await _old_schema.build(raw_conn, Sql("public"), 2)
    # A version-2 store with an event, a checkpoint and a row whose checkpoint is NULL.
    key = await _old_schema.add_stream(raw_conn, "s")
    event_id, _ = await _old_schema.add_event(raw_conn, key, b'{"n": 1}', position=1)
    await raw_conn.execute(
        "INSERT INTO subscriptions (stream_id, subscription_name, last_seen) "
        "VALUES ('s', 'kept', 7), ('$all', 'null', NULL)"
    )
    assert await raw_conn.fetchval("SELECT to_regclass('public.parked_events')") is None
    with pytest.raises(evstore.ConfigurationError, match="evstore migrate"):
        await AsyncEventStore.reset(postgres_url)  # it would miss the new table

    message = await AsyncEventStore.migrate(postgres_url)

    assert message.endswith(f"has been migrated from version 2 to version {SCHEMA_VERSION}.")
    assert await AsyncEventStore.schema_version(postgres_url) == str(SCHEMA_VERSION)
    async with AsyncEventStore(postgres_url) as store:
        backend: StorageBackend = _backend(store)
        listed = await backend.list_subscriptions()
        rows = [(r.stream_id, r.subscription_name, r.last_seen) for r in listed]
        assert rows == [("$all", "null", 0), ("s", "kept", 7)]
        assert await backend.subscription_checkpoint("s", "kept", 0) == 7

        [event] = await store.read_stream_forward("s")
        assert (event.event_id, event.data, event.position) == (event_id, {"n": 1}, 1)
        await backend.park("s", "kept", [_entry(1)])
        assert [e.event_number for e in await backend.parked("s", "kept")] == [1]


async def test_subscription_storage_link_sends_the_store_notification(
    store: AsyncEventStore, raw_conn: asyncpg.Connection
) -> None:
    await store.append_to_stream("s", NO_STREAM, [EventData("E", 1)])
    payloads: asyncio.Queue[str] = asyncio.Queue()
    await raw_conn.add_listener("public.evstore", lambda *args: payloads.put_nowait(args[3]))
    await store.link_to_stream("linked", NO_STREAM, await store.read_stream_forward("s"))
    assert await asyncio.wait_for(payloads.get(), WAIT) == "link"


# -- ownership locks -----------------------------------------------------------------------


async def test_subscription_lock_excludes_other_stores_and_this_one(
    store: AsyncEventStore, postgres_url: str
) -> None:
    async with AsyncEventStore(postgres_url) as other:
        first, second = _backend(store), _backend(other)
        lock = await first.try_lock_subscription("s", "sub")
        assert lock is not None and not lock.lost
        assert await first.try_lock_subscription("s", "sub") is None  # this store again
        assert await second.try_lock_subscription("s", "sub") is None  # another store
        # Other names and streams are separate locks.
        other_name = await second.try_lock_subscription("s", "other")
        other_stream = await first.try_lock_subscription("$all", "sub")
        assert other_name is not None and other_stream is not None

        await lock.release()
        await lock.release()  # idempotent
        taken = await second.try_lock_subscription("s", "sub")
        assert taken is not None
        assert await first.try_lock_subscription("s", "sub") is None
        await taken.release()
        again = await first.try_lock_subscription("s", "sub")
        assert again is not None and not again.lost
        for held in (again, other_name, other_stream):
            await held.release()


async def test_subscription_lock_is_freed_when_the_holding_store_closes(
    store: AsyncEventStore, postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    holder = AsyncEventStore(postgres_url)
    await holder.open()
    try:
        assert await _backend(holder).try_lock_subscription("s", "sub") is not None
        assert await _backend(store).try_lock_subscription("s", "sub") is None
    finally:
        await holder.close()
    lock = await _backend(store).try_lock_subscription("s", "sub")
    assert lock is not None
    # Only this store's lock connection is left.
    locks = _pg(store)._locks
    assert locks is not None
    assert await _pids(raw_conn, "evstore-locks") == [locks.backend_pid]


async def test_subscription_lock_lost_when_its_connection_is_killed_then_taken_again(
    store: AsyncEventStore, postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    backend = _pg(store)
    first = await backend.try_lock_subscription("s", "a")
    second = await backend.try_lock_subscription("s", "b")
    assert first is not None and second is not None
    [pid] = await _pids(raw_conn, "evstore-locks")
    held = await raw_conn.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $1", pid
    )
    assert held == 2

    assert await raw_conn.fetchval("SELECT pg_terminate_backend($1)", pid)

    await asyncio.wait_for(first.wait_lost(), WAIT)
    await asyncio.wait_for(second.wait_lost(), WAIT)
    assert first.lost and second.lost
    await first.release()  # the connection is gone: nothing to do, no error
    async with AsyncEventStore(postgres_url) as other:
        stolen = await _backend(other).try_lock_subscription("s", "a")
        assert stolen is not None  # the server freed it with the session
        assert await backend.try_lock_subscription("s", "a") is None
        await stolen.release()
    retaken = await backend.try_lock_subscription("s", "a")
    assert retaken is not None and not retaken.lost
    [new_pid] = await _pids(raw_conn, "evstore-locks")
    assert new_pid != pid
    assert backend._locks is not None and backend._locks.connections == 2


async def test_subscription_lock_taken_for_a_cancelled_caller_is_given_back(
    store: AsyncEventStore, postgres_url: str
) -> None:
    backend = _backend(store)
    attempt = asyncio.create_task(backend.try_lock_subscription("s", "sub"))
    await asyncio.sleep(0)  # one step: the request is under way
    attempt.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attempt
    async with AsyncEventStore(postgres_url) as other:
        taken: list[Any] = []

        async def free() -> bool:
            lock = await _backend(other).try_lock_subscription("s", "sub")
            if lock is not None:
                taken.append(lock)
            return lock is not None

        await _eventually(free)  # nobody holds it for the caller that gave up
        await taken[0].release()
    lock = await backend.try_lock_subscription("s", "sub")
    assert lock is not None
    await lock.release()
    async with AsyncEventStore(postgres_url) as other:
        # Released once, gone: the cancelled take did not leave a second hold behind.
        assert await _backend(other).try_lock_subscription("s", "sub") is not None


_LOCK_HOLDER = """
import asyncio, sys
from evstore import AsyncEventStore

async def main() -> None:
    store = AsyncEventStore(sys.argv[1])
    await store.open()
    lock = await store._backend.try_lock_subscription("s", "sub")
    print("locked" if lock is not None else "refused", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_subscription_lock_of_a_killed_process_becomes_free(
    store: AsyncEventStore, postgres_url: str
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _LOCK_HOLDER, postgres_url, stdout=asyncio.subprocess.PIPE, env=env
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 30)
        assert line.strip() == b"locked"
        backend = _backend(store)
        assert await backend.try_lock_subscription("s", "sub") is None
        child.send_signal(signal.SIGKILL)
        await asyncio.wait_for(child.wait(), WAIT)
        assert child.returncode == -signal.SIGKILL

        taken: list[Any] = []

        async def free() -> bool:
            lock = await backend.try_lock_subscription("s", "sub")
            if lock is not None:
                taken.append(lock)
            return lock is not None

        await _eventually(free)
        assert not taken[0].lost
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


async def test_subscription_lock_key_separates_schema_stream_and_name() -> None:
    keys = {
        lock_key("public", "s", "sub"),
        lock_key("other", "s", "sub"),
        lock_key("public", "s2", "sub"),
        lock_key("public", "s", "sub2"),
        lock_key("public", "ab", "c"),
        lock_key("public", "a", "bc"),
    }
    assert len(keys) == 6
    assert all(-(2**63) <= key < 2**63 for key in keys)
    assert lock_key("public", "s", "sub") == lock_key("public", "s", "sub")


async def test_subscription_lock_in_another_schema_is_another_lock(postgres_url: str) -> None:
    async with (
        AsyncEventStore(postgres_url) as public,
        AsyncEventStore(postgres_url, schema="tenant") as tenant,
    ):
        assert await _backend(public).try_lock_subscription("s", "sub") is not None
        assert await _backend(tenant).try_lock_subscription("s", "sub") is not None


async def test_subscription_lock_refused_once_the_store_is_closed(postgres_url: str) -> None:
    store = AsyncEventStore(postgres_url)
    await store.open()
    lock = await _backend(store).try_lock_subscription("s", "sub")
    assert lock is not None
    await store.close()
    assert lock.lost  # the session that held it is gone
    await lock.release()
    with pytest.raises(evstore.StorageError, match="not open"):
        await _backend(store).try_lock_subscription("s", "sub")


# -- change notifications ------------------------------------------------------------------


async def test_changes_signalled_after_local_appends_and_links(store: AsyncEventStore) -> None:
    changes = _backend(store).changes
    seen = changes.generation
    await store.append_to_stream("s", NO_STREAM, [EventData("E", 1)])
    assert changes.generation > seen
    seen = changes.generation
    await store.link_to_stream("l", NO_STREAM, await store.read_stream_forward("s"))
    assert changes.generation > seen


async def test_changes_signalled_when_the_sequencer_numbers_a_committed_transaction(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    async with AsyncEventStore(postgres_url, poll_interval=0.1, notifications=False) as store:
        changes = _backend(store).changes
        async with raw_conn.transaction():
            result = await store.append_to_stream(
                "s", NO_STREAM, [EventData("E", 1)], conn=raw_conn
            )
            assert result.position is None
            seen = changes.generation
        # Nothing local announces the commit: the next idle cycle numbers the event.
        assert await changes.wait(seen, WAIT)
        assert [e.position for e in await store.read_all_streams_forward()] == [1]


async def test_changes_another_store_wakes_a_watcher_through_listen(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    async with (
        AsyncEventStore(postgres_url, poll_interval=QUIET) as watcher,
        AsyncEventStore(postgres_url) as writer,
    ):
        backend = _pg(watcher)
        assert backend.poll_interval == QUIET
        await backend.watch_changes()
        await backend.watch_changes()  # idempotent: still one connection
        assert len(await _pids(raw_conn, "evstore-listen")) == 1
        changes = backend.changes
        for i in range(3):
            seen = changes.generation
            await writer.append_to_stream("s", i, [EventData("E", i)])
            assert await changes.wait(seen, WAIT)
        seen = changes.generation
        await writer.link_to_stream("l", NO_STREAM, await writer.read_stream_forward("s"))
        assert await changes.wait(seen, WAIT)  # the link function's NOTIFY


async def test_changes_listener_reconnects_after_its_connection_is_killed(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    async with (
        AsyncEventStore(postgres_url, poll_interval=QUIET) as watcher,
        AsyncEventStore(postgres_url) as writer,
    ):
        backend = _pg(watcher)
        await backend.watch_changes()
        [pid] = await _pids(raw_conn, "evstore-listen")
        changes = backend.changes
        seen = changes.generation

        assert await raw_conn.fetchval("SELECT pg_terminate_backend($1)", pid)

        # Reconnecting signals by itself: what was committed meanwhile was not announced.
        assert await changes.wait(seen, WAIT)
        assert backend._listener is not None
        assert backend._listener.connections == 2 and backend._listener.connected
        [new_pid] = await _pids(raw_conn, "evstore-listen")
        assert new_pid != pid
        seen = changes.generation
        await writer.append_to_stream("s", NO_STREAM, [EventData("E", 1)])
        assert await changes.wait(seen, WAIT)


async def test_changes_without_notifications_open_no_listen_connection(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    async with (
        AsyncEventStore(postgres_url, poll_interval=QUIET, notifications=False) as watcher,
        AsyncEventStore(postgres_url) as writer,
    ):
        backend = _pg(watcher)
        await backend.watch_changes()
        assert await _pids(raw_conn, "evstore-listen") == []
        seen = backend.changes.generation
        await writer.append_to_stream("s", NO_STREAM, [EventData("E", 1)])
        # Polling only: nothing wakes this store (the same wait succeeds with LISTEN above).
        assert not await backend.changes.wait(seen, 1.0)


async def test_changes_close_stops_listening_and_releases_the_connections(
    postgres_url: str, raw_conn: asyncpg.Connection
) -> None:
    store = AsyncEventStore(postgres_url)
    await store.open()
    backend = _pg(store)
    await backend.watch_changes()
    assert await backend.try_lock_subscription("s", "sub") is not None
    assert len(await _pids(raw_conn, "evstore-listen")) == 1
    assert len(await _pids(raw_conn, "evstore-locks")) == 1
    await store.close()

    async def gone() -> bool:
        listening = await _pids(raw_conn, "evstore-listen")
        locking = await _pids(raw_conn, "evstore-locks")
        return listening == locking == []

    await _eventually(gone)
    assert backend._listener is None


async def test_changes_dedicated_connections_use_the_session_mode_url(
    postgres_url: str,
    postgres_dsn_factory: Callable[[], str],
    raw_conn: asyncpg.Connection,
) -> None:
    # A session URL naming another database shows which URL each connection came from.
    session_url = postgres_dsn_factory()
    session_db = session_url.rsplit("/", 1)[1]
    await AsyncEventStore.init(session_url)
    async with AsyncEventStore(
        postgres_url, session_mode_url=session_url, poll_interval=QUIET
    ) as store:
        backend = _pg(store)
        await backend.watch_changes()
        assert await backend.try_lock_subscription("s", "sub") is not None
        rows = await raw_conn.fetch(
            "SELECT application_name, datname FROM pg_stat_activity "
            "WHERE application_name IN ('evstore-listen', 'evstore-locks') ORDER BY 1"
        )
        assert [tuple(row) for row in rows if row[1] == session_db] == [
            ("evstore-listen", session_db),
            ("evstore-locks", session_db),
        ]
