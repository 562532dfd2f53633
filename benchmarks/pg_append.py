"""Throughput of the PostgreSQL backend (a script, not a test).

    PYTHONPATH=src python benchmarks/pg_append.py postgresql://postgres@127.0.0.1/db

Creates nothing but evstore's tables in the given (existing, preferably empty) database, in a
schema of its own (``evstore_bench``) that it drops at the end. Measures:

* appends/s with 50 concurrent single-event appenders in one process, with the latency of
  an append, how many appends a batch and a sequencer cycle carried, and how many appends
  had to wait for a sequencer cycle (their batch found the sequencer lock busy for too
  long and stored its events without positions) and for how long;
* events/s of one appender writing 100-event batches.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from evstore import ANY_VERSION, AsyncEventStore, EventData

SCHEMA = "evstore_bench"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def concurrent_singles(url: str, appenders: int, seconds: float) -> dict[str, Any]:
    async with AsyncEventStore(url, schema=SCHEMA, pool_size=10) as store:
        backend: Any = store._backend
        sequencer = backend._sequencer
        waits: list[float] = []
        original = sequencer.position_of

        async def timed_position_of(event_id: Any) -> int | None:
            started = time.perf_counter()
            try:
                return await original(event_id)  # type: ignore[no-any-return]
            finally:
                waits.append(time.perf_counter() - started)

        sequencer.position_of = timed_position_of
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds

        async def appender(index: int) -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await store.append_to_stream(
                    f"bench-{index}", ANY_VERSION, [EventData("E", {"i": 1})]
                )
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(appender(i) for i in range(appenders)))
        elapsed = time.perf_counter() - started
        batches = backend._writer.batches
        cycles = sequencer.cycles
    figures = {
        "appends_per_s": len(latencies) / elapsed,
        "append_p50_ms": statistics.median(latencies) * 1000,
        "append_p99_ms": _percentile(latencies, 0.99) * 1000,
        "appends_per_batch": len(latencies) / max(batches, 1),
        "sequencer_cycles": cycles,
        "appends_waiting_for_a_cycle": len(waits),
    }
    if waits:
        figures["position_wait_p50_ms"] = statistics.median(waits) * 1000
        figures["position_wait_p99_ms"] = _percentile(waits, 0.99) * 1000
    return figures


async def batches_of_100(url: str, seconds: float) -> dict[str, Any]:
    async with AsyncEventStore(url, schema=SCHEMA) as store:
        events = 0
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        while time.perf_counter() < deadline:
            batch = [EventData("E", {"i": i, "payload": "x" * 100}) for i in range(100)]
            await store.append_to_stream("bench-batches", ANY_VERSION, batch)
            events += len(batch)
        elapsed = time.perf_counter() - started
    return {"events_per_s": events / elapsed}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--appenders", type=int, default=50)
    args = parser.parse_args()
    await AsyncEventStore.init(args.url, schema=SCHEMA)
    try:
        singles = await concurrent_singles(args.url, args.appenders, args.seconds)
        print(f"{args.appenders} concurrent single-event appenders:")
        for key, value in singles.items():
            print(f"  {key:24} {value:10.1f}")
        batched = await batches_of_100(args.url, args.seconds)
        print("1 appender, 100-event batches:")
        print(f"  {'events_per_s':24} {batched['events_per_s']:10.1f}")
    finally:
        await AsyncEventStore.drop(args.url, schema=SCHEMA)


if __name__ == "__main__":
    asyncio.run(main())
