"""Throughput of the SQLite backend (not a test; run by hand).

    PYTHONPATH=src python benchmarks/sqlite_append_read.py [--appenders 50] [--seconds 5]

Measures single-event appends/s with N concurrent appenders in one process (each awaiting
its append before the next, so the writer's group commit is what scales), then events/s
reading ``$all`` forward in pages of 1,000.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import evstore
from evstore import AsyncEventStore, EventData


async def _appender(store: AsyncEventStore, n: int, deadline: float, counts: list[int]) -> None:
    stream = f"bench-{n}"
    while time.perf_counter() < deadline:
        await store.append_to_stream(
            stream, evstore.ANY_VERSION, [EventData("e", {"n": n, "x": "y" * 150})]
        )
        counts[n] += 1


async def main(appenders: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'bench.db'}"
        async with AsyncEventStore(url) as store:
            counts = [0] * appenders
            start = time.perf_counter()
            deadline = start + seconds
            await asyncio.gather(*(_appender(store, n, deadline, counts) for n in range(appenders)))
            elapsed = time.perf_counter() - start
            stats = store._backend.writer_stats()  # type: ignore[attr-defined]
            total = sum(counts)
            print(
                f"appends: {total} single-event appends by {appenders} appenders in "
                f"{elapsed:.2f} s = {total / elapsed:,.0f}/s; "
                f"{stats.transactions} transactions, {stats.requests / stats.transactions:.1f} "
                f"appends per commit"
            )
            for attempt in range(2):
                start, read, position = time.perf_counter(), 0, 0
                while True:
                    batch = await store.read_all_streams_forward(position + 1, 1000)
                    if not batch:
                        break
                    read += len(batch)
                    position = batch[-1].position
                    elapsed = time.perf_counter() - start
                rate = read / elapsed
                print(
                    f"read $all (run {attempt + 1}): {read} events in {elapsed:.2f} s",
                    f"= {rate:,.0f}/s",
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--appenders", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    asyncio.run(main(args.appenders, args.seconds))
