"""Reading a page of a long stream touches about a page of rows, whatever the plan."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from evstore import ANY_VERSION, AsyncEventStore, EventData
from evstore.backends.postgres._sql import Sql

STREAM_EVENTS = 20_000
PAGE = 100


def _scans(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if "Relation Name" in plan:
        yield plan
    for child in plan.get("Plans", []):
        yield from _scans(child)


@pytest.mark.parametrize("forward", [True, False], ids=["forward", "backward"])
async def test_read_stream_generic_plan_reads_one_page_of_a_long_stream(
    postgres_url: str, raw_conn: asyncpg.Connection, forward: bool
) -> None:
    async with AsyncEventStore(postgres_url) as store:
        for _ in range(STREAM_EVENTS // 2000):
            batch = [EventData("E", {"i": i}) for i in range(2000)]
            await store.append_to_stream("long", ANY_VERSION, batch)

    # asyncpg's prepared statements switch to a generic plan after five runs; force it so
    # the test sees the plan a busy store really uses.
    await raw_conn.execute("SET plan_cache_mode = force_generic_plan")
    statement = Sql("public").read_stream(forward=forward)
    await raw_conn.execute(
        f"PREPARE page(bigint, bigint, bigint, bigint, timestamptz) AS {statement}"
    )
    rows = await raw_conn.fetchval(
        f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE page(1, 1, {STREAM_EVENTS}, {PAGE}, NULL)"
    )
    plan = json.loads(rows)[0]["Plan"]

    assert plan["Actual Rows"] == PAGE
    own_rows = sum(
        scan["Actual Rows"] * scan["Actual Loops"]
        for scan in _scans(plan)
        if scan["Relation Name"] == "events" and scan.get("Alias") == "own"
    )
    assert own_rows <= 2 * PAGE, f"read {own_rows} rows of the stream for a page of {PAGE}"
