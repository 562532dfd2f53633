"""LISTEN for other processes' commits, on a connection of its own that comes back when lost.

Sequencer cycles that number rows, and committed links, send ``NOTIFY "<schema>.evstore"``
(see :mod:`._sql`). A :class:`ChangeListener` holds one dedicated connection listening on
that channel and calls ``on_change`` for every notification, so followers in this process
read again at once instead of at their next poll.

Notifications are hints (followers also poll every ``poll_interval``), but a listener that
silently stopped would turn every cross-process delivery into a poll-interval wait. So when
the connection ends (server restart, ``pg_terminate_backend``, network failure: asyncpg's
termination callback), a background task connects again with a backoff capped at
``max_backoff``, and calls ``on_change`` once connected again, because notifications sent
while nobody listened are gone and events may have been missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from evstore.backends.postgres._errors import storage_error

__all__ = ["ChangeListener"]

_log = logging.getLogger(__name__)

_FIRST_BACKOFF = 0.05
"""Seconds before the first reconnection attempt; doubled after each failure."""

Connect = Callable[[], Awaitable[asyncpg.Connection]]


class ChangeListener:
    """One LISTEN connection on ``channel``, reconnected in the background when it dies.

    Args:
        connect: opens a new dedicated connection (session mode: LISTEN needs a session).
        channel: the channel to LISTEN on.
        on_change: called on the event loop for every notification and after reconnecting.
        max_backoff: the longest wait between reconnection attempts (the poll interval:
            waiting longer than followers poll anyway would gain nothing).
    """

    def __init__(
        self,
        connect: Connect,
        channel: str,
        on_change: Callable[[], None],
        max_backoff: float,
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._on_change = on_change
        self._max_backoff = max_backoff
        self._conn: asyncpg.Connection | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._closed = False
        self.connections = 0
        """Connections opened so far (for tests and metrics)."""

    @property
    def connected(self) -> bool:
        """True while a LISTEN connection is open."""
        return self._conn is not None and not self._conn.is_closed()

    @property
    def backend_pid(self) -> int | None:
        """The server process id of the LISTEN connection, while connected."""
        conn = self._conn
        if conn is None or conn.is_closed():
            return None
        return conn.get_server_pid()

    async def start(self) -> None:
        """Connect and LISTEN. When that fails, keep trying in the background (followers
        poll meanwhile) rather than fail the caller: notifications are only hints."""
        try:
            await self._listen()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _log.warning(
                "evstore: LISTEN connection failed, retrying in the background: %s",
                storage_error(exc, "listening for notifications"),
            )
            self._reconnect_soon()

    async def close(self) -> None:
        """Stop listening and reconnecting. Idempotent."""
        self._closed = True
        task, self._reconnecting = self._reconnecting, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.remove_termination_listener(self._terminated)
            try:
                await conn.close(timeout=1.0)
            except Exception:  # dead or stuck: drop it without the goodbye
                conn.terminate()

    async def _listen(self) -> None:
        conn = await self._connect()
        try:
            await conn.add_listener(self._channel, self._notified)
        except BaseException:
            conn.terminate()
            raise
        if self._closed:  # closed while connecting
            conn.terminate()
            return
        conn.add_termination_listener(self._terminated)
        self._conn = conn
        self.connections += 1

    def _notified(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        self._on_change()

    def _terminated(self, conn: Any) -> None:
        if conn is not self._conn:
            return
        self._conn = None
        if not self._closed:
            _log.info("evstore: LISTEN connection lost; reconnecting")
            self._reconnect_soon()

    def _reconnect_soon(self) -> None:
        if self._closed or (self._reconnecting is not None and not self._reconnecting.done()):
            return
        self._reconnecting = asyncio.get_running_loop().create_task(
            self._reconnect(), name="evstore-listen-reconnect"
        )

    async def _reconnect(self) -> None:
        backoff = _FIRST_BACKOFF
        while not self._closed:
            await asyncio.sleep(min(backoff, self._max_backoff))
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log.warning(
                    "evstore: LISTEN reconnection failed: %s",
                    storage_error(exc, "listening for notifications"),
                )
                backoff *= 2
                continue
            # Whatever was committed while nobody listened sent its NOTIFY into the void.
            self._on_change()
            return
