"""Group commit: concurrent appends of one process written in shared transactions.

Appends are queued; a writer task takes everything queued (up to a batch limit) and runs it
in one transaction: ``BEGIN``, one ``evstore_append(...)`` call per append — pipelined, so
the whole batch costs one round trip — and ``COMMIT``. The commit's fsync is paid once per
batch instead of once per append, which is where the throughput comes from.

Each call runs in its own subtransaction inside the function, so an append that fails its
expectation or repeats an event id rolls back alone and reports a status code; its
neighbours commit. Only once the batch has committed are the callers told their outcome.

A caller that gives up (its timeout) before its batch commits gets nothing written: a
batch whose callers were cancelled while it ran is rolled back and the rest run again. Only
a timeout striking during the COMMIT round trip itself leaves the outcome unknown to the
caller. (Waiting for the global position afterwards is not covered by this: see the
backend's ``append``.)

Two safeguards keep one append from holding up a batch:

* ``lock_timeout``: an append waiting for a stream row locked by a long transaction
  elsewhere (for example a caller's ``conn=`` transaction) gives up quickly with
  ``STATUS_RETRY`` while the rest commits; it then waits in a slow lane of its own, so
  later batches do not wait for that lock again.
* A batch that fails before its COMMIT runs again append by append, so a value the server
  refuses fails only its own append.
* Lock order: a batch calls appends sorted by stream id (stable, so one stream's appends
  keep their order), so two batches never wait on each other's stream rows in a cycle.

A batch is capped at :data:`MAX_BATCH` appends: every append is a subtransaction with its
own subxid, and PostgreSQL caches only 64 per backend; beyond that every snapshot in the
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

from evstore.backends.postgres._errors import storage_error
from evstore.backends.postgres._sql import STATUS_RETRY
from evstore.errors import StorageError

__all__ = ["MAX_BATCH", "AppendRequest", "GroupCommitWriter"]

MAX_BATCH = 60
"""Appends per transaction; below the 64 cached subtransaction ids (see module docstring)."""

LOCK_TIMEOUT = "100ms"
"""How long an append in a batch may wait for a row lock before it moves to the slow lane."""

SLOW_LANE_LOCK_TIMEOUT = "1s"
"""How long the slow lane waits for a row lock per attempt (it retries until the caller
gives up)."""

_CLOSE_GRACE = 5.0
"""Seconds ``close`` waits for appends blocked on someone else's row lock."""

_log = logging.getLogger(__name__)

AppendRow = Sequence[Any]
"""One append's outcome: status, version, deleted, last seq, detail (``evstore_append``'s row)."""


@dataclass(slots=True)
class AppendRequest:
    """One queued append: the stream (for lock ordering) and the function's arguments."""

    stream_id: str
    args: Sequence[Any]
    future: asyncio.Future[AppendRow] = field(repr=False)


class GroupCommitWriter:
    """Writes queued appends in shared transactions on connections from ``pool``.

    Args:
        pool: the store's connection pool.
        statement: the ``evstore_append`` call (one row per append).
        writers: how many batches may be in flight at once (each on its own connection).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        statement: str,
        *,
        batch_statement: str | None = None,
        writers: int = 2,
    ) -> None:
        self._pool = pool
        self._statement = statement
        self._batch_statement = batch_statement
        self._queue: deque[AppendRequest] = deque()
        self._wake = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._run(), name=f"evstore-writer-{i}") for i in range(writers)
        ]
        self._blocked: deque[AppendRequest] = deque()
        self._slow_lane: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0
        """Transactions committed (for tests and metrics)."""
        self.appends = 0
        """Appends committed in them."""
        self.fallbacks = 0
        """Batches the set-based statement refused, run append by append instead."""

    async def submit(self, stream_id: str, args: Sequence[Any]) -> AppendRow:
        """Queue one append and return its function row once its batch has committed.

        Raises:
            StorageError, EventStoreTimeoutError: the batch failed; the append may or may
                not have been committed if the failure hit the COMMIT itself.
        """
        if self._closing and all(task.done() for task in self._tasks):
            raise StorageError("the PostgreSQL store is closed")
        future: asyncio.Future[AppendRow] = asyncio.get_running_loop().create_future()
        self._queue.append(AppendRequest(stream_id, args, future))
        self._wake.set()
        return await future

    async def close(self) -> None:
        """Write what is queued, then stop the writer tasks."""
        self._closing = True
        self._wake.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
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
        while self._queue and len(batch) < MAX_BATCH:
            request = self._queue.popleft()
            if not request.future.done():  # the caller gave up (timeout): do not write it
                batch.append(request)
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
            blocked = await self._write(batch)
            if blocked:
                self._blocked.extend(blocked)
                if self._slow_lane is None or self._slow_lane.done():
                    self._slow_lane = asyncio.create_task(
                        self._run_slow_lane(), name="evstore-writer-slow-lane"
                    )

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
                if not await self._write([request], lock_timeout=SLOW_LANE_LOCK_TIMEOUT):
                    break

    async def _write(
        self, batch: list[AppendRequest], *, lock_timeout: str = LOCK_TIMEOUT
    ) -> list[AppendRequest]:
        """Run one batch; return the appends that met a locked row and must run again.

        If the batch fails before its COMMIT (a value the server refuses while reading the
        parameters, say), nothing of it was written and each append runs again on its own,
        so the failure reaches only the append that caused it. A failure during COMMIT
        leaves the outcome unknown and is reported to every append of the batch.
        """
        ordered = sorted(batch, key=lambda request: request.stream_id)
        committing = False
        try:
            async with self._pool.acquire() as conn:
                begin = (
                    "BEGIN ISOLATION LEVEL READ COMMITTED; "
                    f"SET LOCAL lock_timeout = '{lock_timeout}'"
                )
                await conn.execute(begin)
                try:
                    rows = await self._run_appends(conn, ordered, begin)
                    if any(request.future.cancelled() for request in ordered):
                        # A caller gave up (its timeout) while the batch ran: undo the
                        # batch rather than write an append reported as failed.
                        await conn.execute("ROLLBACK")
                        return await self._write_each(
                            [r for r in ordered if not r.future.cancelled()], lock_timeout
                        )
                    committing = True
                    await conn.execute("COMMIT")
                except BaseException:
                    # Best effort: the pool resets a connection it gets back anyway.
                    with contextlib.suppress(Exception):
                        if not conn.is_closed() and conn.is_in_transaction():
                            await conn.execute("ROLLBACK")
                    raise
        except asyncio.CancelledError:
            # The writer itself is being stopped: the callers' own tasks were not cancelled,
            # so they get an error, not a CancelledError they did not ask for.
            stopped = StorageError("the PostgreSQL store stopped while this append was written")
            for request in ordered:
                if not request.future.done():
                    request.future.set_exception(stopped)
            raise
        except Exception as exc:
            if not committing and len(ordered) > 1:
                return await self._write_each(ordered, lock_timeout)
            doing = "committing" if committing else "writing"
            error = storage_error(exc, f"{doing} a batch of {len(ordered)} appends")
            if error is not exc:
                error.__cause__ = exc
            _log.warning("evstore append batch failed: %s", error)
            for request in ordered:
                if not request.future.done():
                    request.future.set_exception(error)
            return []
        self.batches += 1
        blocked: list[AppendRequest] = []
        for request, row in zip(ordered, rows, strict=True):
            if row[0] == STATUS_RETRY:
                blocked.append(request)
                continue
            self.appends += 1
            if not request.future.done():
                request.future.set_result(row)
        return blocked

    async def _run_appends(
        self, conn: Any, ordered: list[AppendRequest], begin: str
    ) -> Sequence[AppendRow]:
        """Run the batch's appends in the open transaction; one row per append.

        The set-based ``evstore_append_batch`` first (one statement for the batch) when the
        batch holds several appends. When it refuses the batch (see its docstring), the
        transaction is begun again and each append runs through ``evstore_append`` in its
        own subtransaction, pipelined.
        """
        # A lone append goes straight to evstore_append: the set-based statement's
        # bookkeeping only pays off when a batch holds several appends (benchmarks/
        # hot_paths.py: one 100-event append 4.0 ms through it, 2.1 ms without).
        if self._batch_statement is not None and len(ordered) > 1:
            try:
                row = await conn.fetchrow(self._batch_statement, *_batch_arguments(ordered))
            except asyncpg.PostgresError:
                await conn.execute("ROLLBACK")
                await conn.execute(begin)
                self.fallbacks += 1
            else:
                return list(zip(*row, strict=True))
        rows: list[AppendRow] = await conn.fetchmany(
            self._statement, [request.args for request in ordered]
        )
        return rows

    async def _write_each(
        self, requests: list[AppendRequest], lock_timeout: str
    ) -> list[AppendRequest]:
        """Run each append in a transaction of its own."""
        blocked: list[AppendRequest] = []
        for request in requests:
            blocked += await self._write([request], lock_timeout=lock_timeout)
        return blocked


def _batch_arguments(ordered: list[AppendRequest]) -> tuple[list[Any], ...]:
    """``evstore_append_batch``'s arguments: per-append columns, then per-event columns.

    A request's arguments are ``evstore_append``'s: stream id, expected code, created_at,
    then one list per event column.
    """
    stream_ids, expected, created_at = [], [], []
    append_numbers: list[int] = []
    nth: list[int] = []
    columns: list[list[Any]] = [[] for _ in range(7)]
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
    return (stream_ids, expected, created_at, append_numbers, nth, *columns)
