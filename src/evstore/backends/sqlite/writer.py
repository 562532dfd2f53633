"""The group-commit writer: one thread, one connection, many appends per transaction.

Every write of a backend instance goes through one :class:`WriterThread`. Callers on any
event loop queue an *operation* (a blocking function of the connection) and await a future.
The thread takes everything queued, runs the operations in one ``BEGIN IMMEDIATE``
transaction, each inside its own ``SAVEPOINT`` — an operation that raises (a failed
expectation, a duplicate id) is rolled back to its savepoint and gets its own error without
touching its neighbours — commits once, and only then resolves the futures. So a batch of
concurrent appends costs one fsync, and no caller hears "done" before its data is durable.

An operation may come with an ``on_commit`` callback, run on its caller's event loop once
its transaction committed, even when the caller stopped waiting (a timed-out append that
still committed must still wake the subscriptions following the log).

``BEGIN IMMEDIATE`` takes SQLite's write lock up front: other processes' writers wait on it
(``busy_timeout``), writes serialise across processes, and rowid positions are handed out in
commit order.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from evstore.backends.sqlite._errors import translate
from evstore.errors import StorageError

__all__ = ["Operation", "WriterStats", "WriterThread"]

Operation = Callable[[sqlite3.Connection], Any]
"""A unit of work run inside the writer's transaction; it raises to undo itself."""

_STOP: Final = object()


@dataclass(slots=True)
class _Request:
    operation: Operation
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    on_commit: Callable[[], None] | None = None
    value: Any = None
    error: BaseException | None = None


@dataclass(slots=True)
class WriterStats:
    """Counters for tests and benchmarks: how well writes were grouped."""

    transactions: int = 0
    """Transactions committed."""
    requests: int = 0
    """Operations that ran in a committed transaction (successful or failed on their own)."""
    largest_batch: int = 0


def _settle(requests: list[_Request]) -> None:
    """Resolve the futures (on their event loop) unless their callers gave up, then run the
    ``on_commit`` callbacks of the operations that succeeded, each distinct one once."""
    callbacks: dict[Callable[[], None], None] = {}
    for request in requests:
        if request.error is None and request.on_commit is not None:
            callbacks[request.on_commit] = None
        if request.future.done():
            continue
        if request.error is not None:
            request.future.set_exception(request.error)
        else:
            request.future.set_result(request.value)
    for callback in callbacks:
        callback()


@dataclass
class WriterThread:
    """Owns the writer connection and the thread that uses it.

    Args:
        conn: the writer connection; from :meth:`start` on only the writer thread uses it,
            and the thread closes it when it stops.
        path: the database path, for error messages.
        max_batch: most operations per transaction (bounds a transaction's latency).
    """

    conn: sqlite3.Connection
    path: str
    max_batch: int = 1000
    stats: WriterStats = field(default_factory=WriterStats)
    _queue: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closing: bool = False
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"evstore-sqlite-writer[{self.path}]", daemon=True
        )
        self._thread.start()

    def submit(
        self, operation: Operation, *, on_commit: Callable[[], None] | None = None
    ) -> asyncio.Future[Any]:
        """Queue ``operation``; the future resolves after its transaction commits.

        Must be called from a running event loop. ``on_commit`` runs on that loop after the
        operation succeeded and its transaction committed, whether or not anyone still awaits
        the future.

        Raises:
            StorageError: the writer is stopping (the backend is being closed).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        # The lock makes "not closing" and "queued before the stop marker" one step, so no
        # request can land behind the marker and wait forever.
        with self._lock:
            if self._closing:
                raise StorageError(f"the SQLite store {self.path!r} is closed")
            self._queue.put(_Request(operation, future, loop, on_commit))
        return future

    def stop(self) -> None:
        """Let queued writes finish, then stop the thread and close the connection. Blocks."""
        with self._lock:
            if not self._closing:
                self._closing = True
                self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join()

    # -- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            stopping = False
            while not stopping:
                batch: list[_Request] = []
                item = self._queue.get()
                while True:
                    if item is _STOP:
                        stopping = True
                        break
                    batch.append(item)
                    if len(batch) >= self.max_batch:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    try:
                        self._write(batch)
                    except Exception as exc:
                        # A bug here must neither leave callers waiting nor stop the writer.
                        self._abandon(batch, exc)
        finally:
            self.conn.close()

    def _write(self, batch: list[_Request]) -> None:
        # A caller that timed out before its write started is not written at all.
        pending = [request for request in batch if not request.future.cancelled()]
        while pending:
            pending = self._transaction(pending)

    def _transaction(self, requests: list[_Request]) -> list[_Request]:
        """Run ``requests`` in one transaction; return those to run again in a new one.

        Requests come back only when the driver aborted the whole transaction on behalf of
        one of them (disk full, I/O error): that one fails, the others are retried.
        """
        conn = self.conn
        finished: list[_Request] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for index, request in enumerate(requests):
                conn.execute("SAVEPOINT request")
                try:
                    request.value = request.operation(conn)
                except Exception as exc:
                    request.error = self._error(exc)
                    if not conn.in_transaction:
                        self._resolve([request])
                        retry = finished + requests[index + 1 :]
                        for other in retry:
                            other.value = other.error = None
                        return retry
                    conn.execute("ROLLBACK TO request")
                conn.execute("RELEASE request")
                finished.append(request)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # BEGIN, a savepoint statement or COMMIT failed: nothing of the batch is stored.
            if conn.in_transaction:
                # If this fails too, the connection is broken; the original error says why.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            error = translate(exc, self.path)
            for request in requests:
                request.error = error
                request.value = None
            self._resolve(requests)
            return []
        stats = self.stats
        stats.transactions += 1
        stats.requests += len(finished)
        stats.largest_batch = max(stats.largest_batch, len(finished))
        self._resolve(finished)
        return []

    def _abandon(self, batch: list[_Request], exc: Exception) -> None:
        if self.conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
        for request in batch:
            request.error = exc
        self._resolve(batch)

    def _error(self, exc: Exception) -> BaseException:
        return translate(exc, self.path) if isinstance(exc, sqlite3.Error) else exc

    @staticmethod
    def _resolve(requests: list[_Request]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Request]] = {}
        for request in requests:
            by_loop.setdefault(request.loop, []).append(request)
        for loop, settled in by_loop.items():
            # One wake-up per loop per batch rather than one per request. A closed loop
            # raises RuntimeError: nobody is waiting there any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, settled)
