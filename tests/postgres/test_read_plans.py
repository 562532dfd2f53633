"""Reading a page of a long stream or of $all touches about a page of rows, whatever the plan."""

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


async def _page_plan(
    conn: asyncpg.Connection, mode: str, statement: str, types: str, arguments: str
) -> tuple[int, list[dict[str, Any]]]:
    """Run ``statement`` as a prepared statement under ``plan_cache_mode = mode``; the
    rows it returned and the table scans of its plan (``EXPLAIN ANALYZE``)."""
    await conn.execute(f"SET plan_cache_mode = {mode}")
    await conn.execute(f"PREPARE page({types}) AS {statement}")
    explained = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE page({arguments})")
    plan = json.loads(explained)[0]["Plan"]
    return plan["Actual Rows"], list(_scans(plan))


def _rows_read(scans: list[dict[str, Any]], alias: str | None = None) -> int:
    """Rows the plan's scans of ``events`` (under ``alias``, if given) read in all."""
    return sum(
        scan["Actual Rows"] * scan["Actual Loops"]
        for scan in scans
        if scan["Relation Name"] == "events" and alias in (None, scan.get("Alias"))
    )


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
    returned, scans = await _page_plan(
        raw_conn,
        "force_generic_plan",
        Sql("public").read_stream(forward=forward),
        "bigint, bigint, bigint, bigint, timestamptz",
        f"1, 1, {STREAM_EVENTS}, {PAGE}, NULL",
    )

    assert returned == PAGE
    own_rows = _rows_read(scans, alias="own")
    assert own_rows <= 2 * PAGE, f"read {own_rows} rows of the stream for a page of {PAGE}"


LOG_EVENTS = 20_000


@pytest.mark.parametrize("forward", [True, False], ids=["forward", "backward"])
@pytest.mark.parametrize("plans", ["custom", "generic"])
async def test_read_all_page_reads_one_page_of_the_log_whatever_the_plan(
    postgres_url: str, raw_conn: asyncpg.Connection, forward: bool, plans: str
) -> None:
    async with AsyncEventStore(postgres_url) as store:
        # No statistics, as on a log filled since the last autovacuum: the planner's
        # estimate for a position range is then a guess, and the first runs of asyncpg's
        # prepared statements are custom plans made for the actual bounds.
        await raw_conn.execute("ALTER TABLE events SET (autovacuum_enabled = false)")
        for stream in range(LOG_EVENTS // 2000):
            batch = [EventData("E", {"i": i}) for i in range(2000)]
            await store.append_to_stream(f"s-{stream}", ANY_VERSION, batch)

    returned, scans = await _page_plan(
        raw_conn,
        "force_custom_plan" if plans == "custom" else "force_generic_plan",
        Sql("public").read_all(forward=forward),
        "bigint, bigint, bigint",
        # The bounds the façade sends for a read from the origin (or from the end).
        f"1, {2**63 - 1}, {PAGE}",
    )

    assert returned == PAGE
    event_rows = _rows_read(scans)
    assert event_rows <= 2 * PAGE, f"read {event_rows} rows of $all for a page of {PAGE}"
