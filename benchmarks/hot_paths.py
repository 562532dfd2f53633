"""Micro-measurements behind design choices of the hot paths (a script, not a test).

    PYTHONPATH=src python benchmarks/hot_paths.py [postgresql://postgres@127.0.0.1/postgres]

In this process (each figure is the median of 5 timed runs):

1. Building a ``RecordedEvent`` on reads: the frozen dataclass's own ``__init__`` against
   ``evstore._types.recorded_event`` (a slots twin, then ``__class__`` assignment).
2. A fresh event id: ``uuid.uuid4()`` against ``evstore._ids.new_uuid4`` (random bytes
   read 256 ids at a time, the ``UUID`` built without ``__init__``'s argument parsing).

With an admin URL, in a scratch database it drops afterwards:

3. Client CPU per ``timestamptz`` value read (median of 5 runs of 50 reads of 1,000 rows):
   asyncpg's codec against the pool's (``evstore.backends.postgres._codecs``), on rows that
   repeat one value (as the events of one append do) and on rows that all differ; and the
   client CPU of encoding a 100-event append's ``evstore_write`` parameters, with every
   array sent and with the arrays that say nothing sent as NULL.
4. Server and commit time, the median of 30 transactions after 5 warm-up ones: one
   ``evstore_write`` statement (its own transaction: the set-based checks, the events and
   their positions, the commit) against the same appends as pipelined ``evstore_append``
   calls in one explicit transaction (the fallback path, which leaves the numbering to a
   later sequencer cycle), for a batch of 50 single-event appends to 50 streams and for one
   100-event append.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import sys
import time
import timeit
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from evstore._ids import new_uuid4
from evstore._types import RecordedEvent, recorded_event

ROUNDS = 30
WARM_UP = 5


def _per_call_us(function: Callable[[], object], runs: int = 200_000) -> float:
    """Median over 5 runs of microseconds per call."""
    return statistics.median(timeit.repeat(function, number=runs, repeat=5)) / runs * 1e6


def construction() -> None:
    values = (uuid.uuid4(), 1, "s", 1, 1, "T", {"a": 1}, None, None, None, datetime.now(UTC))
    frozen = _per_call_us(lambda: RecordedEvent(*values))
    twin = _per_call_us(lambda: recorded_event(*values))
    print(f"RecordedEvent: frozen __init__ {frozen:.2f} us, recorded_event() {twin:.2f} us")
    standard = _per_call_us(uuid.uuid4)
    ours = _per_call_us(new_uuid4)
    print(f"event id: uuid.uuid4() {standard:.2f} us, new_uuid4() {ours:.2f} us")


async def timestamps(url: str) -> None:
    """Client CPU per timestamptz value read, asyncpg's codec against the pool's."""
    import asyncpg

    from evstore.backends.postgres._codecs import install_codecs

    plain = await asyncpg.connect(url)
    ours = await asyncpg.connect(url)
    await install_codecs(ours)
    queries = {
        "one append's rows (one value)": "SELECT now() FROM generate_series(1, 1000)",
        "distinct values": (
            "SELECT now() + n * interval '1 microsecond' FROM generate_series(1, 1000) n"
        ),
    }
    try:
        for name, query in queries.items():
            figures = []
            for conn in (plain, ours):
                await conn.fetch(query)
                runs = []
                for _ in range(5):
                    started = time.process_time()
                    for _ in range(50):
                        await conn.fetch(query)
                    runs.append((time.process_time() - started) / 50 / 1000 * 1e6)
                figures.append(statistics.median(runs))
            print(
                f"timestamptz rows, {name}: client CPU per row {figures[0]:.2f} us with "
                f"asyncpg's codec, {figures[1]:.2f} us with evstore's"
            )
    finally:
        await plain.close()
        await ours.close()


def _args(stream: str, events: int) -> tuple[Any, ...]:
    return (
        stream,
        -1,  # ANY_VERSION
        datetime.now(UTC),
        [uuid.uuid4() for _ in range(events)],
        ["OrderPlaced"] * events,
        [b'{"order_id": 1, "total": 12345}'] * events,
        [None] * events,
        [0] * events,
        [None] * events,
        [None] * events,
    )


async def parameters(url: str) -> None:
    """Client CPU of encoding one 100-event append's ``evstore_write`` parameters, with every
    array sent, and with the arrays that say nothing sent as NULL (as the writer does)."""
    import asyncpg

    from evstore.backends.postgres.writer import AppendRequest, _batch_arguments

    conn = await asyncpg.connect(url)
    try:
        loop = asyncio.get_running_loop()
        request = AppendRequest("s", _args("s", 100), loop.create_future())
        slim = _batch_arguments([request])
        full = (*slim[:3], [1] * 100, list(range(1, 101)), *request.args[3:])
        types = ["text", "bigint", "timestamptz", "integer", "integer", "uuid", "text"]
        types += ["bytea", "bytea", "smallint", "uuid", "uuid"]
        casts = " AND ".join(f"${n}::{t}[] IS NULL" for n, t in enumerate(types, 1))
        query = f"SELECT 1 WHERE {casts}"  # the same parameters, nothing done with them
        figures = {}
        for name, args in (("every array", full), ("empty arrays as NULL", slim), ("none", ())):
            statement = query if args else "SELECT 1 WHERE false"
            await conn.fetchval(statement, *args)
            runs = []
            for _ in range(5):
                started = time.process_time()
                for _ in range(200):
                    await conn.fetchval(statement, *args)
                runs.append((time.process_time() - started) / 200 * 1e6)
            figures[name] = statistics.median(runs)
        base = figures.pop("none")
        print(
            "encoding a 100-event append's parameters, client CPU: "
            + ", ".join(f"{name} {value - base:.0f} us" for name, value in figures.items())
            + f" (beyond the {base:.0f} us of a round trip with none)"
        )
    finally:
        await conn.close()


async def appends(admin_url: str) -> None:
    import asyncpg

    from evstore import AsyncEventStore
    from evstore.backends.postgres._sql import Sql
    from evstore.backends.postgres.writer import AppendRequest, _batch_arguments

    database = f"evstore_bench_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    url = urlunsplit(urlsplit(admin_url)._replace(path="/" + database))
    try:
        await AsyncEventStore.init(url)
        await timestamps(url)
        await parameters(url)
        sql = Sql("public")
        conn = await asyncpg.connect(url, server_settings={"jit": "off"})
        loop = asyncio.get_running_loop()

        def requests(prefix: str, appends: int, events: int) -> list[AppendRequest]:
            return [
                AppendRequest(f"{prefix}-{i}", _args(f"{prefix}-{i}", events), loop.create_future())
                for i in range(appends)
            ]

        async def timed(run: Callable[[int], Any]) -> float:
            samples = []
            for round_ in range(WARM_UP + ROUNDS):
                started = time.perf_counter()
                await run(round_)
                samples.append(time.perf_counter() - started)
            return statistics.median(samples[WARM_UP:]) * 1000

        async def written(prefix: str, appends: int, events: int) -> float:
            async def run(round_: int) -> None:
                batch = requests(f"{prefix}-{round_}", appends, events)
                await conn.fetchrow(sql.write, *_batch_arguments(batch))

            return await timed(run)

        async def one_by_one(prefix: str, appends: int, events: int) -> float:
            async def run(round_: int) -> None:
                batch = requests(f"{prefix}-{round_}", appends, events)
                async with conn.transaction():
                    await conn.fetchmany(sql.append, [request.args for request in batch])

            return await timed(run)

        print("median ms per transaction (the calls and the commit):")
        print(f"  50 x 1 event : evstore_write {await written('b', 50, 1):.2f}, "
              f"evstore_append each {await one_by_one('p', 50, 1):.2f}")  # fmt: skip
        print(f"  1 x 100 events: evstore_write {await written('B', 1, 100):.2f}, "
              f"evstore_append {await one_by_one('P', 1, 100):.2f}")  # fmt: skip
        await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    construction()
    if len(sys.argv) > 1:
        asyncio.run(appends(sys.argv[1]))
