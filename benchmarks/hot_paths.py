"""Micro-measurements behind two design choices of the hot paths (a script, not a test).

    PYTHONPATH=src python benchmarks/hot_paths.py [postgresql://postgres@127.0.0.1/postgres]

1. Building a ``RecordedEvent`` on reads: the frozen dataclass's own ``__init__`` against
   ``evstore._types.recorded_event`` (a slots twin, then ``__class__`` assignment).
2. With an admin URL: server time of a group-commit batch of 50 single-event appends to
   50 streams, as one ``evstore_append_batch`` call against 50 pipelined ``evstore_append``
   calls, and of one 100-event append through each; in a scratch database it drops after.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import sys
import time
import timeit
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from evstore._types import RecordedEvent, recorded_event

ROUNDS = 30


def construction() -> None:
    values = (uuid.uuid4(), 1, "s", 1, 1, "T", {"a": 1}, None, None, None, datetime.now(UTC))
    runs = 200_000
    frozen = timeit.timeit(lambda: RecordedEvent(*values), number=runs) / runs * 1e6
    twin = timeit.timeit(lambda: recorded_event(*values), number=runs) / runs * 1e6
    print(f"RecordedEvent: frozen __init__ {frozen:.2f} us, recorded_event() {twin:.2f} us")


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
        sql = Sql("public")
        conn = await asyncpg.connect(url, server_settings={"jit": "off"})
        loop = asyncio.get_running_loop()

        def requests(prefix: str, appends: int, events: int) -> list[AppendRequest]:
            return [
                AppendRequest(f"{prefix}-{i}", _args(f"{prefix}-{i}", events), loop.create_future())
                for i in range(appends)
            ]

        async def timed(run: Any) -> float:
            samples = []
            for round_ in range(ROUNDS):
                started = time.perf_counter()
                async with conn.transaction():
                    await run(round_)
                samples.append(time.perf_counter() - started)
            return statistics.median(samples[5:]) * 1000  # the first rounds warm caches

        async def batch(prefix: str, appends: int, events: int) -> float:
            async def run(round_: int) -> None:
                batch = requests(f"{prefix}-{round_}", appends, events)
                await conn.fetchrow(sql.append_batch, *_batch_arguments(batch))

            return await timed(run)

        async def one_by_one(prefix: str, appends: int, events: int) -> float:
            async def run(round_: int) -> None:
                batch = requests(f"{prefix}-{round_}", appends, events)
                await conn.fetchmany(sql.append, [request.args for request in batch])

            return await timed(run)

        print("median ms per transaction (append calls + commit):")
        print(f"  50 x 1 event : batch {await batch('b', 50, 1):.2f}, "
              f"per append {await one_by_one('p', 50, 1):.2f}")  # fmt: skip
        print(f"  1 x 100 events: batch {await batch('B', 1, 100):.2f}, "
              f"per append {await one_by_one('P', 1, 100):.2f}")  # fmt: skip
        await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    construction()
    if len(sys.argv) > 1:
        asyncio.run(appends(sys.argv[1]))
