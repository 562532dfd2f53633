"""Group commit: concurrent appends of one process written, and numbered, together.

Appends are queued; one writer task takes everything queued (up to a batch limit) and runs
it as a single ``evstore_write`` statement: one round trip and one transaction for the
whole batch, which checks each append on its own, stores the accepted ones and — when the
sequencer lock is free — gives them their global positions in the same transaction. So a
batch costs one durable commit, and its callers usually learn their positions from the
statement itself. While a batch runs, the next one accumulates; the writer sends it the
moment the previous one is done, so the server is never idle for long and batches grow
with the load.

One statement in flight per process also keeps this process's batches from competing for
the sequencer lock with each other: they only meet other processes' batches and cycles (a
short wait, or, when the lock stays busy, events stored without positions for a sequencer
cycle to number; see :mod:`._sql`).

Only once the statement has returned are the callers told their outcome. A caller that
gives up (its timeout) before its batch is sent is not written; one that gives up while the
statement runs may find its events stored.

When ``evstore_write`` refuses a batch (a value the server refuses, an event id repeated or
already stored, a stream created meanwhile elsewhere, a stream row locked for longer than
its lock timeout), nothing of it was written, and the batch runs again append by append:
``evstore_append`` calls pipelined in one explicit transaction, each in its own
subtransaction, so a failing append reports its own status and its neighbours commit:

* ``lock_timeout``: an append waiting for a stream row locked by a long transaction
  elsewhere (for example a caller's ``conn=`` transaction) gives up quickly with
  ``STATUS_RETRY`` while the rest commits; it then waits in a slow lane of its own, so
  later batches do not wait for that lock again.
* A transaction of this path that fails before its COMMIT runs again append by append,
  each alone, so a value the server refuses fails only its own append; a caller that gave
  up meanwhile is rolled back with it and not written.
* Lock order: batches lock stream rows sorted by stream id (stable, so one stream's appends
  keep their order), so two batches never wait on each other's stream rows in a cycle.

This path's events are numbered by a sequencer cycle after commit. Its transactions hold at
most :data:`MAX_SUBTRANSACTIONS` appends: every append is a subtransaction with its own
subxid, and PostgreSQL caches only 64 per backend; beyond that every snapshot in the
cluster becomes "suboverflowed" and visibility checks slow down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from evstore.backends.postgres._codes import STATUS_RETRY
from evstore.backends.postgres._errors import storage_error
from evstore.errors import StorageError

__all__ = [
    "MAX_BATCH",
    "MAX_BATCH_EVENTS",
    "MAX_SUBTRANSACTIONS",
    "AppendRequest",
    "GroupCommitWriter",
]

MAX_BATCH = 200
"""Most appends in one ``evstore_write`` statement."""

MAX_BATCH_EVENTS = 20_000
"""A batch takes no more appends once it holds this many events (it always takes one)."""

MAX_SUBTRANSACTIONS = 60
"""Appends per transaction when a batch runs append by append: below the 64 cached
subtransaction ids (see the module docstring)."""

LOCK_TIMEOUT = "100ms"
"""How long an append run append by append may wait for a row lock before it moves to the
slow lane."""

SLOW_LANE_LOCK_TIMEOUT = "1s"
"""How long the slow lane waits for a row lock per attempt (it retries until the caller
gives up)."""

_CLOSE_GRACE = 5.0
"""Seconds ``close`` waits for appends blocked on someone else's row lock."""

_log = logging.getLogger(__name__)

AppendRow = Sequence[Any]
"""One append's outcome: status, version, deleted, position of its last event (``None``:
not numbered yet), detail."""


@dataclass(slots=True)
class AppendRequest:
    """One queued append: the stream (for lock ordering) and ``evstore_append``'s
    arguments (stream id, expected code, created_at, then one list per event column)."""

    stream_id: str
    args: Sequence[Any]
    future: asyncio.Future[AppendRow] = field(repr=False)


class GroupCommitWriter:
    """Writes queued appends in shared transactions on connections from ``pool``.

    Args:
        pool: the store's connection pool.
        write_statement: the ``evstore_write`` call (a whole batch).
        append_statement: the ``evstore_append`` call (one append, for batches run append
            by append).
    """

    def __init__(self, pool: asyncpg.Pool, write_statement: str, append_statement: str) -> None:
        self._pool = pool
        self._write_statement = write_statement
        self._append_statement = append_statement
        self._queue: deque[AppendRequest] = deque()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="evstore-writer")
        self._blocked: deque[AppendRequest] = deque()
        self._slow_lane: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0
        """Transactions committed (for tests and metrics)."""
        self.appends = 0
        """Appends settled in them (written, or refused on their own)."""
        self.fallbacks = 0
        """Batches ``evstore_write`` refused, run append by append instead."""

    async def submit(self, stream_id: str, args: Sequence[Any]) -> AppendRow:
        """Queue one append and return its outcome row once its batch has committed.

        Raises:
            StorageError, EventStoreTimeoutError: the batch failed; the append may or may
                not have been committed if the connection failed while it ran.
        """
        if self._closing and self._task.done():
            raise StorageError("the PostgreSQL store is closed")
        future: asyncio.Future[AppendRow] = asyncio.get_running_loop().create_future()
        self._queue.append(AppendRequest(stream_id, args, future))
        self._wake.set()
        return await future

    async def close(self) -> None:
        """Write what is queued, then stop the writer task."""
        self._closing = True
        self._wake.set()
        await asyncio.gather(self._task, return_exceptions=True)
        lane = self._slow_lane
        if lane is not None and not lane.done():
            # Appends waiting on a lock someone else holds: give them a little time.
            done, _ = await asyncio.wait([lane], timeout=_CLOSE_GRACE)
            if not done:
                lane.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lane
        closed = StorageError("the PostgreSQL store was closed before this append was written")
        while self._blocked:
            request = self._blocked.popleft()
            if not request.future.done():
                request.future.set_exception(closed)

    def _take_batch(self) -> list[AppendRequest]:
        batch: list[AppendRequest] = []
        events = 0
        queue = self._queue
        while queue and len(batch) < MAX_BATCH and events < MAX_BATCH_EVENTS:
            request = queue.popleft()
            if not request.future.done():  # the caller gave up (timeout): do not write it
                batch.append(request)
                events += len(request.args[3])
        return batch

    async def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if not batch:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            ordered = sorted(batch, key=lambda request: request.stream_id)
            blocked = await self._write_batch(ordered)
            if blocked:
                self._blocked.extend(blocked)
                if self._slow_lane is None or self._slow_lane.done():
                    self._slow_lane = asyncio.create_task(
                        self._run_slow_lane(), name="evstore-writer-slow-lane"
                    )

    async def _write_batch(self, ordered: list[AppendRequest]) -> list[AppendRequest]:
        """Run one batch through ``evstore_write``, or append by append when it refuses;
        return the appends that met a locked row and must run again."""
        try:
            async with self._pool.acquire() as conn:
                row: Any = await conn.fetchrow(self._write_statement, *_batch_arguments(ordered))
        except asyncio.CancelledError:
            self._stopped(ordered)
            raise
        except asyncpg.PostgresError as exc:
            if not refused(exc):
                self._fail(ordered, exc, "writing")
                return []
            # The server refused the statement, so its transaction rolled back: nothing of
            # the batch is stored, and each append can be run again on its own terms.
            self.fallbacks += 1
            blocked: list[AppendRequest] = []
            for start in range(0, len(ordered), MAX_SUBTRANSACTIONS):
                chunk = ordered[start : start + MAX_SUBTRANSACTIONS]
                blocked += await self._write_each(chunk, LOCK_TIMEOUT)
            return blocked
        except Exception as exc:
            # The connection failed: the statement may or may not have committed.
            self._fail(ordered, exc, "writing")
            return []
        self.batches += 1
        self.appends += len(ordered)
        for request, outcome in zip(ordered, zip(*row, strict=True), strict=True):
            if not request.future.done():
                request.future.set_result(outcome)
        return []

    async def _run_slow_lane(self) -> None:
        """Write appends that met a locked stream row, one at a time, off the batches.

        Such an append waits for someone else's transaction (a caller's ``conn=`` one, say)
        to end. Retrying it inside shared batches would make every batch wait for the lock;
        here it waits alone, with a longer lock timeout, until it is written or its caller
        gives up.
        """
        while self._blocked:
            request = self._blocked.popleft()
            while not request.future.done():
                if not await self._write_each([request], SLOW_LANE_LOCK_TIMEOUT):
                    break

    async def _write_each(
        self, requests: list[AppendRequest], lock_timeout: str
    ) -> list[AppendRequest]:
        """Run ``requests`` append by append in one transaction; return the appends that
        met a locked row and must run again.

        If the transaction fails before its COMMIT (a value the server refuses while
        reading the parameters, say), nothing of it was written and each append runs again
        in a transaction of its own, so the failure reaches only the append that caused it.
        A failure during COMMIT leaves the outcome unknown and is reported to every append.
        """
        committing = False
        try:
            async with self._pool.acquire() as conn:
                await conn.execute(
                    "BEGIN ISOLATION LEVEL READ COMMITTED; "
                    f"SET LOCAL lock_timeout = '{lock_timeout}'"
                )
                try:
                    rows: list[Any] = await conn.fetchmany(
                        self._append_statement, [request.args for request in requests]
                    )
                    if any(request.future.cancelled() for request in requests):
                        # A caller gave up (its timeout) while the batch ran: undo the
                        # batch rather than write an append reported as failed.
                        await conn.execute("ROLLBACK")
                        remaining = [r for r in requests if not r.future.cancelled()]
                        return await self._write_alone(remaining, lock_timeout)
                    committing = True
                    await conn.execute("COMMIT")
                except BaseException:
                    # Best effort: the pool rolls back a connection it gets back anyway.
                    with contextlib.suppress(Exception):
                        if not conn.is_closed() and conn.is_in_transaction():
                            await conn.execute("ROLLBACK")
                    raise
        except asyncio.CancelledError:
            self._stopped(requests)
            raise
        except Exception as exc:
            if not committing and len(requests) > 1:
                return await self._write_alone(requests, lock_timeout)
            self._fail(requests, exc, "committing" if committing else "writing")
            return []
        self.batches += 1
        blocked: list[AppendRequest] = []
        for request, row in zip(requests, rows, strict=True):
            if row[0] == STATUS_RETRY:
                blocked.append(request)
                continue
            self.appends += 1
            if not request.future.done():
                request.future.set_result(row)
        return blocked

    async def _write_alone(
        self, requests: list[AppendRequest], lock_timeout: str
    ) -> list[AppendRequest]:
        """Run each append in a transaction of its own."""
        blocked: list[AppendRequest] = []
        for request in requests:
            blocked += await self._write_each([request], lock_timeout)
        return blocked

    @staticmethod
    def _stopped(requests: list[AppendRequest]) -> None:
        # The writer itself is being stopped: the callers' own tasks were not cancelled,
        # so they get an error, not a CancelledError they did not ask for.
        stopped = StorageError("the PostgreSQL store stopped while this append was written")
        for request in requests:
            if not request.future.done():
                request.future.set_exception(stopped)

    @staticmethod
    def _fail(requests: list[AppendRequest], exc: Exception, doing: str) -> None:
        error = storage_error(exc, f"{doing} a batch of {len(requests)} appends")
        if error is not exc:
            error.__cause__ = exc
        _log.warning("evstore append batch failed: %s", error)
        for request in requests:
            if not request.future.done():
                request.future.set_exception(error)


_UNKNOWN_OUTCOME_STATES = ("08", "57P")
"""SQLSTATE prefixes of failures that end the connection (connection exceptions; the
server shutting down or crashing): the statement may have committed before it."""


def refused(exc: asyncpg.PostgresError) -> bool:
    """Whether the server refused the statement (so it rolled back and wrote nothing),
    rather than the connection ending under it (outcome unknown: running the appends again
    would report ids the lost statement stored as duplicates)."""
    state = getattr(exc, "sqlstate", None) or ""
    return not state.startswith(_UNKNOWN_OUTCOME_STATES)


def _batch_arguments(ordered: list[AppendRequest]) -> tuple[list[Any] | None, ...]:
    """``evstore_write``'s arguments: per-append columns, then per-event columns.

    A request's arguments are ``evstore_append``'s: stream id, expected code, created_at,
    then one list per event column. Columns that hold only defaults go as NULL (their
    encoding is a large part of an append's CPU cost; the function fills them in).
    """
    if len(ordered) == 1:  # the lone append: its lists are the batch's
        args = ordered[0].args
        stream_ids, expected, created_at = [args[0]], [args[1]], [args[2]]
        append_numbers: list[int] | None = None
        nth: list[int] | None = None
        columns: Sequence[list[Any]] = args[3:10]
    else:
        stream_ids, expected, created_at = [], [], []
        append_numbers, nth = [], []
        columns = [[] for _ in range(7)]
        for number, request in enumerate(ordered, start=1):
            args = request.args
            stream_ids.append(args[0])
            expected.append(args[1])
            created_at.append(args[2])
            count = len(args[3])
            append_numbers += [number] * count
            nth += range(1, count + 1)
            for column, values in zip(columns, args[3:10], strict=True):
                column += values
    event_ids, types, data, metadata, flags, correlation, causation = columns
    return (
        stream_ids,
        expected,
        created_at,
        append_numbers,
        nth,
        event_ids,
        types,
        data,
        _unless_all(metadata, None),
        flags if any(flags) else None,
        _unless_all(correlation, None),
        _unless_all(causation, None),
    )


def _unless_all(values: list[Any], default: None) -> list[Any] | None:
    """``values``, or ``None`` when every one is ``default``."""
    return None if values.count(default) == len(values) else values
