"""Ownership of persistent subscriptions: session advisory locks on one connection.

A named persistent subscription is delivered by one process at a time. Its owner holds a
session-level ``pg_try_advisory_lock(key)`` where ``key`` is a 64-bit hash of (schema,
stream id, subscription name). Session locks, not transaction locks: ownership lasts as long
as the session, and PostgreSQL releases it by itself when the owner's session ends, whether
the process closed, crashed or lost its network. (So the lock connection must not go
through a transaction-mode pooler: the backend opens it from ``session_mode_url`` when set.)

One :class:`SubscriptionLocks` per backend holds all of that backend's locks on one
dedicated connection, opened on first use. Two rules follow from session locks:

* PostgreSQL lets a session take a lock it already holds (it counts), so this class
  refuses a key it holds itself: a second subscriber in the same store must be excluded
  like one in another store or process.
* If that connection dies, every lock it carried is gone on the server: each becomes
  :attr:`~evstore.backends.base.SubscriptionLock.lost` at once (asyncpg's termination
  callback), and the next :meth:`SubscriptionLocks.try_lock` opens a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from evstore.backends.base import SubscriptionLock
from evstore.backends.postgres._errors import translated
from evstore.errors import StorageError

__all__ = ["AdvisorySubscriptionLock", "SubscriptionLocks", "lock_key"]

_log = logging.getLogger(__name__)

Connect = Callable[[], Awaitable[asyncpg.Connection]]

_TRY_LOCK = "SELECT pg_try_advisory_lock($1::bigint)"
_UNLOCK = "SELECT pg_advisory_unlock($1::bigint)"


def lock_key(schema: str, stream_id: str, name: str) -> int:
    """The advisory lock key of a subscription: a signed 64-bit hash of its identity.

    Each part is length-prefixed, so no two different (schema, stream, name) triples encode
    to the same bytes. Computed here rather than with ``hashtextextended``: it needs no
    round trip, and it is stable across PostgreSQL versions and processes.
    """
    encoded = b"".join(
        len(part.encode()).to_bytes(4, "big") + part.encode() for part in (schema, stream_id, name)
    )
    digest = hashlib.blake2b(b"evstore.subscription\0" + encoded, digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class AdvisorySubscriptionLock(SubscriptionLock):
    """One subscription's advisory lock, held on its owner's lock connection."""

    def __init__(self, owner: SubscriptionLocks, key: int, conn: asyncpg.Connection) -> None:
        self._owner = owner
        self.key = key
        """The advisory lock key."""
        self.conn = conn
        """The connection holding the lock."""
        self._lost = asyncio.Event()
        self._released = False

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    @property
    def released(self) -> bool:
        """True once :meth:`release` was called."""
        return self._released

    async def wait_lost(self) -> None:
        await self._lost.wait()

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        await self._owner.release(self)

    def mark_lost(self) -> None:
        """The lock's session ended: it is no longer held (unless already released)."""
        if not self._released:
            self._lost.set()


class SubscriptionLocks:
    """The advisory locks of one backend, on one lazily opened connection.

    Args:
        connect: opens a new dedicated session connection.
        schema: the store's schema (part of every key).
    """

    def __init__(self, connect: Connect, schema: str) -> None:
        self._connect = connect
        self._schema = schema
        self._conn: asyncpg.Connection | None = None
        self._held: dict[int, AdvisorySubscriptionLock] = {}
        # One connection runs one statement at a time: tries and releases take turns.
        self._mutex = asyncio.Lock()
        self._background: set[asyncio.Future[None]] = set()
        self._closed = False
        self.connections = 0
        """Connections opened so far (for tests and metrics)."""

    @property
    def backend_pid(self) -> int | None:
        """The server process id of the lock connection, while it is open."""
        conn = self._conn
        if conn is None or conn.is_closed():
            return None
        return conn.get_server_pid()

    async def try_lock(self, stream_id: str, name: str) -> AdvisorySubscriptionLock | None:
        """Take the subscription's lock without waiting; ``None`` when anyone holds it,
        this backend included.

        Raises:
            StorageError: the lock connection could not be opened or failed twice.
        """
        key = lock_key(self._schema, stream_id, name)
        # Shielded: a caller cancelled while the server grants the lock must not leave it
        # held by this session for nobody (and a later re-take here would only stack on it).
        attempt = asyncio.ensure_future(self._take(key))
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:
            attempt.add_done_callback(self._give_back)
            raise

    async def _take(self, key: int) -> AdvisorySubscriptionLock | None:
        async with self._mutex:
            if self._closed:
                raise StorageError("the PostgreSQL store is closed")
            if key in self._held:
                return None
            conn = await self._connection()
            try:
                taken = await self._try(conn, key)
            except StorageError:
                if not conn.is_closed():
                    raise
                # The connection had died unnoticed: its locks are gone already, and a
                # fresh session can take this one.
                self._connection_ended(conn)
                conn = await self._connection()
                taken = await self._try(conn, key)
            if not taken:
                return None
            lock = AdvisorySubscriptionLock(self, key, conn)
            self._held[key] = lock
            return lock

    @staticmethod
    async def _try(conn: asyncpg.Connection, key: int) -> bool:
        with translated("taking a subscription lock"):
            taken: bool = await conn.fetchval(_TRY_LOCK, key)
        return taken

    def _give_back(self, attempt: asyncio.Future[AdvisorySubscriptionLock | None]) -> None:
        """Release a lock taken for a caller that gave up waiting for it."""
        if attempt.cancelled() or attempt.exception() is not None:
            return
        lock = attempt.result()
        if lock is not None:
            task = asyncio.get_running_loop().create_task(lock.release())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def release(self, lock: AdvisorySubscriptionLock) -> None:
        """Unlock ``lock`` on the server (a no-op when its connection is gone)."""
        if self._held.get(lock.key) is lock:
            del self._held[lock.key]
        if lock.lost:
            return
        # Shielded: once forgotten here, the lock must really go on the server, even if the
        # caller is cancelled meanwhile; a lock left behind would stack under a re-take.
        unlock = asyncio.ensure_future(self._unlock(lock))
        self._background.add(unlock)
        unlock.add_done_callback(self._background.discard)
        await asyncio.shield(unlock)

    async def _unlock(self, lock: AdvisorySubscriptionLock) -> None:
        async with self._mutex:
            conn = lock.conn
            if conn.is_closed():
                return  # the session ended: the server released the lock with it
            try:
                with translated("releasing a subscription lock"):
                    await conn.fetchval(_UNLOCK, lock.key)
            except StorageError as exc:
                # A connection that fails now takes its locks with it when it closes;
                # close it so that happens at once instead of at some later timeout.
                _log.warning("evstore: %s; closing the lock connection", exc)
                conn.terminate()

    async def close(self) -> None:
        """Close the lock connection: the server releases every lock on it. Idempotent."""
        async with self._mutex:
            self._closed = True
            conn, self._conn = self._conn, None
            held, self._held = list(self._held.values()), {}
        for lock in held:
            lock.mark_lost()
        if conn is not None:
            conn.remove_termination_listener(self._terminated)
            try:
                await conn.close(timeout=1.0)
            except Exception:  # dead or stuck: drop it without the goodbye
                conn.terminate()

    async def _connection(self) -> asyncpg.Connection:
        conn = self._conn
        if conn is not None and not conn.is_closed():
            return conn
        if conn is not None:
            self._connection_ended(conn)
        with translated("opening the subscription lock connection"):
            conn = await self._connect()
        conn.add_termination_listener(self._terminated)
        self._conn = conn
        self.connections += 1
        return conn

    def _terminated(self, conn: Any) -> None:
        self._connection_ended(conn)

    def _connection_ended(self, conn: asyncpg.Connection) -> None:
        """Every lock ``conn`` carried is gone with its session."""
        if self._conn is conn:
            self._conn = None
        for key, lock in list(self._held.items()):
            if lock.conn is conn:
                del self._held[key]
                lock.mark_lost()
        with contextlib.suppress(Exception):
            conn.remove_termination_listener(self._terminated)
