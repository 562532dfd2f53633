"""Throughput of the PostgreSQL backend (a script, not a test).

    PYTHONPATH=src python benchmarks/pg_append.py postgresql://postgres@127.0.0.1/db

Creates nothing but evstore's tables in the given (existing, preferably empty) database, in a
schema of its own (``evstore_bench``) that it drops at the end. Measures:

* appends/s with 50 concurrent single-event appenders in one process, with the latency of
  an append, how many appends a batch and a sequencer cycle carried, and how many appends
  had to wait for a sequencer cycle (their batch found the sequencer lock busy for too
  long and stored its events without positions) and for how long;
* one appender writing 100-event batches: events/s, and per append its wall time, the
  client's CPU (building the ``EventData`` objects shown apart) and the server time of its
  ``evstore_write`` statements (``pg_stat_user_functions`` with ``track_functions=pl``);
* for one appender of single events, the durable commits each append costs: the deltas of
  ``pg_stat_wal.wal_sync`` (WAL flushes) and of ``pg_stat_database.xact_commit`` (committed
  transactions, the measuring queries excluded) over 300 appends, when nothing else writes
  to the database.
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
    """One appender of 100-event batches: throughput, where its time goes (client CPU,
    building the events included; the server time of its ``evstore_write`` calls)."""
    import asyncpg

    tracked = url + ("&" if "?" in url else "?") + "track_functions=pl"
    function_time = (
        "SELECT coalesce(sum(calls), 0), coalesce(sum(total_time), 0) "
        "FROM pg_stat_user_functions WHERE funcname = 'evstore_write' AND schemaname = $1"
    )

    async def server_time() -> tuple[int, float]:
        await asyncio.sleep(0.5)  # backends report their counters as they exit
        conn = await asyncpg.connect(url)
        try:
            row: Any = await conn.fetchrow(function_time, SCHEMA)
            return int(row[0]), float(row[1])
        finally:
            await conn.close()

    calls_before, time_before = await server_time()
    async with AsyncEventStore(tracked, schema=SCHEMA) as store:
        appends = building = 0.0
        deadline = time.perf_counter() + seconds
        started, cpu = time.perf_counter(), time.process_time()
        while time.perf_counter() < deadline:
            built = time.process_time()
            batch = [EventData("E", {"i": i, "payload": "x" * 100}) for i in range(100)]
            building += time.process_time() - built
            await store.append_to_stream("bench-batches", ANY_VERSION, batch)
            appends += 1
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    calls_after, time_after = await server_time()
    return {
        "events_per_s": appends * 100 / elapsed,
        "append_ms": elapsed / appends * 1000,
        "client_cpu_ms": cpu / appends * 1000,
        "building_events_ms": building / appends * 1000,
        "evstore_write_ms": (time_after - time_before) / max(calls_after - calls_before, 1),
    }


async def commits_per_append(url: str, appends: int = 300) -> dict[str, float]:
    import asyncpg

    query = (
        "SELECT (SELECT wal_sync FROM pg_stat_wal), "
        "(SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())"
    )

    async def counters() -> tuple[int, int]:
        # Backends report their counters as they exit: read them after the store closed,
        # from a connection of its own (whose query commits once).
        await asyncio.sleep(0.5)
        conn = await asyncpg.connect(url)
        try:
            row: Any = await conn.fetchrow(query)
            return int(row[0]), int(row[1])
        finally:
            await conn.close()

    async def run(count: int) -> tuple[int, int]:
        syncs, commits = await counters()
        async with AsyncEventStore(url, schema=SCHEMA, poll_interval=60) as store:
            for i in range(count):
                await store.append_to_stream("bench-commits", ANY_VERSION, [EventData("E", i)])
        after_syncs, after_commits = await counters()
        return after_syncs - syncs, after_commits - commits

    await run(1)  # the stream exists from here on
    # Opening and closing a store commits a few transactions of its own (the schema check,
    # the pool's connections): measured around a store that appends nothing, taken off.
    idle_syncs, idle_commits = await run(0)
    syncs, commits = await run(appends)
    return {
        "wal_flushes_per_append": (syncs - idle_syncs) / appends,
        "commits_per_append": (commits - idle_commits) / appends,
    }


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
        for key, value in batched.items():
            print(f"  {key:24} {value:10.2f}")
        commits = await commits_per_append(args.url)
        print("1 appender, single events, with nothing else writing:")
        for key, value in commits.items():
            print(f"  {key:24} {value:10.2f}")
    finally:
        await AsyncEventStore.drop(args.url, schema=SCHEMA)


if __name__ == "__main__":
    asyncio.run(main())
