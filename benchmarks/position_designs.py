"""How evstore's lock-free global position compares with the classic global-lock designs.

    PYTHONPATH=src python benchmarks/position_designs.py postgresql://postgres@127.0.0.1/postgres

Given an admin URL, it creates a scratch database (``evstore_bench_<hex>``), runs each
design in turn on it with the same load — ``--writers`` concurrent tasks (default 50), each
appending one ~100-byte JSON event per operation for ``--seconds``, over a pool of 10
connections, durable commits — and drops the database at the end. Designs:

* ``counter row``: the Elixir EventStore's way: ``UPDATE positions SET last = last + 1``
  inside the append transaction, so the row lock is held through the commit's fsync;
* ``advisory lock``: ``pg_advisory_xact_lock(const)`` then an insert with a bigserial;
* ``evstore``: ``AsyncEventStore.append_to_stream`` (group commit, no global lock, the
  sequencer assigns positions; each append returns its position).

It prints appends/s and latency percentiles for each, and evstore's ratio to the best
locked design.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from evstore import ANY_VERSION, AsyncEventStore, EventData

PAYLOAD = '{"order_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "total": 12345, "note": "x"}'
POOL_SIZE = 10

LOCKED_SCHEMA = """
CREATE TABLE positions (id boolean PRIMARY KEY, last bigint NOT NULL);
INSERT INTO positions VALUES (true, 0);
CREATE TABLE counter_events (
    position bigint PRIMARY KEY, stream text NOT NULL, data jsonb NOT NULL);
CREATE TABLE advisory_events (
    position bigserial PRIMARY KEY, stream text NOT NULL, data jsonb NOT NULL);
"""


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


async def run_load(
    writers: int, seconds: float, append: Callable[[int], Awaitable[None]]
) -> dict[str, float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def writer(index: int) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await append(index)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(writer(i) for i in range(writers)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "appends/s": len(latencies) / elapsed,
        "p50 ms": statistics.median(ordered) * 1000,
        "p99 ms": ordered[int(len(ordered) * 0.99)] * 1000,
    }


async def counter_row(url: str, writers: int, seconds: float) -> dict[str, float]:
    async with asyncpg.create_pool(url, min_size=POOL_SIZE, max_size=POOL_SIZE) as pool:

        async def append(index: int) -> None:
            async with pool.acquire() as conn, conn.transaction():
                position = await conn.fetchval(
                    "UPDATE positions SET last = last + 1 RETURNING last"
                )
                await conn.execute(
                    "INSERT INTO counter_events VALUES ($1, $2, $3::jsonb)",
                    position,
                    f"stream-{index}",
                    PAYLOAD,
                )

        return await run_load(writers, seconds, append)


async def advisory_lock(url: str, writers: int, seconds: float) -> dict[str, float]:
    async with asyncpg.create_pool(url, min_size=POOL_SIZE, max_size=POOL_SIZE) as pool:

        async def append(index: int) -> None:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(42)")
                await conn.fetchval(
                    "INSERT INTO advisory_events (stream, data) VALUES ($1, $2::jsonb) "
                    "RETURNING position",
                    f"stream-{index}",
                    PAYLOAD,
                )

        return await run_load(writers, seconds, append)


async def evstore_appends(url: str, writers: int, seconds: float) -> dict[str, float]:
    async with AsyncEventStore(url, pool_size=POOL_SIZE) as store:
        data = {"order_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "total": 12345, "note": "x"}

        async def append(index: int) -> None:
            result = await store.append_to_stream(
                f"stream-{index}", ANY_VERSION, [EventData("OrderPlaced", data)]
            )
            assert result.position is not None

        return await run_load(writers, seconds, append)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("admin_url")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--writers", type=int, default=50)
    args = parser.parse_args()

    database = f"evstore_bench_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(args.admin_url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    url = with_database(args.admin_url, database)
    try:
        conn = await asyncpg.connect(url)
        durability = (
            await conn.fetchval("SHOW synchronous_commit"),
            await conn.fetchval("SHOW fsync"),
        )
        await conn.execute(LOCKED_SCHEMA)
        await conn.close()
        print(f"synchronous_commit={durability[0]} fsync={durability[1]}")
        print(f"{args.writers} writers x 1 event per append, {args.seconds:.0f} s each\n")
        results = {
            "counter row": await counter_row(url, args.writers, args.seconds),
            "advisory lock": await advisory_lock(url, args.writers, args.seconds),
            "evstore": await evstore_appends(url, args.writers, args.seconds),
        }
        print(f"{'design':15} {'appends/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
        for name, figures in results.items():
            print(
                f"{name:15} {figures['appends/s']:10.0f} {figures['p50 ms']:8.1f} "
                f"{figures['p99 ms']:8.1f}"
            )
        best_locked = max(
            results["counter row"]["appends/s"], results["advisory lock"]["appends/s"]
        )
        print(
            f"\nevstore / best locked design: {results['evstore']['appends/s'] / best_locked:.1f}x"
        )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
