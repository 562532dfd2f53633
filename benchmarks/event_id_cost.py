"""What a unique event id costs a 100-event insert on PostgreSQL (a script, not a test).

    PYTHONPATH=src python benchmarks/event_id_cost.py postgresql://postgres@127.0.0.1/db

Works in a schema of its own (``evstore_event_id_cost``) in the given database, dropped at
the end. One connection, rounds of 300 inserts of 100 events each per table, the tables
taking turns so a drift of the machine touches them all; ids and parameters are made
before the clock starts, so the figures are the database's and asyncpg's work:

* ``no id``: the benchmark suite's raw table (position, stream, version, type, payload,
  time; unique (stream, version));
* ``random id``: the same with ``event_id uuid NOT NULL UNIQUE``, version-4 ids;
* ``sequential id``: the same column, ids that only grow (as time-ordered ids would);
* ``evstore_write``: evstore's own statement (schema, function, commit included) on a
  fresh store in the same database, version-4 ids.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

from evstore import AsyncEventStore
from evstore.backends.postgres._codes import ANY

SCHEMA = "evstore_event_id_cost"
EVENTS = 100
INSERTS = 300
PAYLOAD = b'{"order_id": "0f8f3c0e-6a34-4c1f-9a51-4c6c7c3a950e", "total": 12345}'


def _table(name: str, id_column: bool) -> str:
    return f"""CREATE TABLE {SCHEMA}.{name} (
        position bigserial PRIMARY KEY,
        {"event_id uuid NOT NULL UNIQUE," if id_column else ""}
        stream_id text NOT NULL, version bigint NOT NULL, type text NOT NULL,
        data bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (stream_id, version))"""


def _insert(name: str, id_column: bool) -> str:
    if not id_column:
        return (
            f"INSERT INTO {SCHEMA}.{name} (stream_id, version, type, data) "
            "SELECT $1, v, t, d FROM unnest($2::bigint[], $3::text[], $4::bytea[]) u(v, t, d)"
        )
    return (
        f"INSERT INTO {SCHEMA}.{name} (event_id, stream_id, version, type, data) "
        "SELECT e, $1, v, t, d "
        "FROM unnest($5::uuid[], $2::bigint[], $3::text[], $4::bytea[]) u(e, v, t, d)"
    )


async def main(url: str, rounds: int) -> None:
    conn = await asyncpg.connect(url)
    await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}")
    try:
        for name, id_column in (("no_id", False), ("random_id", True), ("sequential_id", True)):
            await conn.execute(_table(name, id_column))
        async with AsyncEventStore(url, schema=SCHEMA):
            pass  # creates evstore's tables and functions in the schema
        types, data = ["OrderPlaced"] * EVENTS, [PAYLOAD] * EVENTS
        versions = {"no id": 0, "random id": 0, "sequential id": 0, "evstore_write": 0}
        sequence = iter(range(1, 2**62))

        def ids(sequential: bool) -> list[uuid.UUID]:
            if sequential:
                return [uuid.UUID(int=next(sequence) << 64) for _ in range(EVENTS)]
            return [uuid.uuid4() for _ in range(EVENTS)]

        def raw(
            label: str, table: str, id_column: bool, sequential: bool
        ) -> Callable[[], list[Callable[[], Awaitable[object]]]]:
            statement = _insert(table, id_column)

            def prepare() -> list[Callable[[], Awaitable[object]]]:
                calls = []
                for _ in range(INSERTS):
                    first = versions[label]
                    args: list[object] = ["s", list(range(first + 1, first + EVENTS + 1))]
                    args += [types, data] + ([ids(sequential)] if id_column else [])
                    versions[label] += EVENTS
                    calls.append(lambda a=args: conn.execute(statement, *a))
                return calls

            return prepare

        write = (
            f"SELECT o_status FROM {SCHEMA}.evstore_write($1::text[], $2::bigint[], "
            "$3::timestamptz[], NULL, NULL, $4::uuid[], $5::text[], $6::bytea[], NULL, NULL, "
            "NULL, NULL)"
        )

        async def append(event_ids: list[uuid.UUID]) -> None:
            status = await conn.fetchval(
                write, ["s"], [ANY], [datetime.now(UTC)], event_ids, types, data
            )
            if status != [0]:
                raise RuntimeError(f"evstore_write refused the append: status {status}")

        def evstore() -> list[Callable[[], Awaitable[object]]]:
            batches = [ids(False) for _ in range(INSERTS)]
            return [lambda i=batch: append(i) for batch in batches]

        cases = {
            "no id": raw("no id", "no_id", False, False),
            "random id": raw("random id", "random_id", True, False),
            "sequential id": raw("sequential id", "sequential_id", True, True),
            "evstore_write": evstore,
        }
        print(f"ms per {EVENTS}-event insert, {INSERTS} inserts per round")
        for round_number in range(1, rounds + 1):
            figures = []
            for label, prepare in cases.items():
                calls = prepare()
                started = time.perf_counter()
                for call in calls:
                    await call()
                elapsed = (time.perf_counter() - started) / INSERTS * 1e3
                figures.append(f"{label} {elapsed:.3f}")
            print(f"round {round_number}: " + ", ".join(figures))
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="an existing PostgreSQL database to work in")
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.url, arguments.rounds))
