"""Where the SQLite writer's time goes under W2 with 50 writers (a script, not a test).

    PYTHONPATH=src python benchmarks/sqlite_writer.py [--seconds 4] [--dir DIR]

Runs the suite's W2 shape (50 asyncio tasks in one process, each appending one event at a
time to its own stream with the exact expected version) for ``--seconds``:

1. on SQLite (a fresh file in ``--dir``), timing what the writer thread does in each
   transaction: ``BEGIN IMMEDIATE``, the appends (statements and Python), ``COMMIT``
   (the fsync of ``synchronous=FULL``), both as wall time and as the thread's CPU time
   (the kernel's share of an fsync counts there);
2. on the memory backend, which does no I/O at all: what the façade, the event objects and
   asyncio cost per append in this process, the ceiling any backend meets here.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import evstore.backends.sqlite.writer as writer_module
from evstore import AsyncEventStore, EventData
from evstore.bench._data import EVENT_TYPE, PAYLOAD

WRITERS = 50


class _Timed:
    """The writer connection, timing each statement by its first word."""

    def __init__(self, conn: Any, spent: dict[str, list[float]]) -> None:
        self._conn, self._spent = conn, spent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def _timed(self, method: str, sql: str, *args: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        result = getattr(self._conn, method)(sql, *args)
        figures = self._spent[sql.split()[0].upper()]
        figures[0] += time.perf_counter() - wall
        figures[1] += time.thread_time() - cpu
        return result

    def execute(self, sql: str, *args: Any) -> Any:
        return self._timed("execute", sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        return self._timed("executemany", sql, *args)


async def _load(url: str, seconds: float) -> int:
    appends = 0
    async with AsyncEventStore(url) as store:

        async def writer() -> None:
            nonlocal appends
            stream, version = str(uuid.uuid4()), 0
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                events = [EventData(EVENT_TYPE, PAYLOAD)]
                version = (await store.append_to_stream(stream, version, events)).stream_version
                appends += 1
                await asyncio.sleep(0)  # the memory backend never suspends an append

        await asyncio.gather(*(writer() for _ in range(WRITERS)))
    return appends


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--dir", default=None, help="where the scratch database goes")
    args = parser.parse_args()

    spent: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    transactions = [0]
    original = writer_module.WriterThread._transaction

    def timed_transaction(self: Any, requests: Any) -> Any:
        conn = self.conn
        self.conn = _Timed(conn, spent)
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return original(self, requests)
        finally:
            figures = spent["transaction"]
            figures[0] += time.perf_counter() - wall
            figures[1] += time.thread_time() - cpu
            transactions[0] += 1
            self.conn = conn

    writer_module.WriterThread._transaction = timed_transaction  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        started = time.perf_counter()
        appends = await _load(f"sqlite:///{Path(directory) / 'events.db'}", args.seconds)
        elapsed = time.perf_counter() - started
    writer_module.WriterThread._transaction = original  # type: ignore[method-assign]
    per = max(transactions[0], 1)
    print(f"SQLite, {WRITERS} writers: {appends / elapsed:,.0f} appends/s, "
          f"{appends / per:.1f} appends per transaction")  # fmt: skip
    print("  per transaction       wall us    CPU us")
    for name, (wall, cpu) in sorted(spent.items(), key=lambda item: -item[1][0]):
        print(f"  {name:20} {wall / per * 1e6:9.0f} {cpu / per * 1e6:9.0f}")

    started, cpu = time.perf_counter(), time.process_time()
    appends = await _load("memory://", args.seconds)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"memory, {WRITERS} writers (no I/O): {appends / elapsed:,.0f} appends/s, "
          f"{cpu / appends * 1e6:.1f} us of CPU per append")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
