"""The benchmark suite's own checks: helpers, target arithmetic, and a tiny real run.

The real run uses SQLite and fractions of a second per cell: it checks that every system
writes and reads what it claims (a wrong count raises), not how fast.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import asyncpg
import pytest
from click.testing import CliRunner

from evstore.bench._report import render, run_tables
from evstore.bench._results import Cell, Run
from evstore.bench._targets import check_targets
from evstore.bench._timing import percentile, run_thread_load
from evstore.bench.main import main
from evstore.bench.runner import parse_workloads
from evstore.bench.systems.raw_pg import RawPostgresTarget
from evstore.bench.systems.raw_sqlite import FifoLock
from evstore.cli import cli


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([], 0.5) == 0.0


def test_thread_load_counts_every_completed_operation() -> None:
    calls = []
    lock = threading.Lock()

    def operation() -> None:
        with lock:
            calls.append(1)
        time.sleep(0.001)

    result = run_thread_load([operation, operation], 0.2)
    assert result.ops == len(calls) > 0
    assert len(result.latencies) == result.ops


def test_fifo_lock_serves_waiters_in_arrival_order() -> None:
    lock = FifoLock()
    order: list[int] = []

    def waiter(index: int) -> None:
        with lock.held():
            order.append(index)

    with lock.held():
        threads = []
        for index in range(5):
            thread = threading.Thread(target=waiter, args=(index,))
            thread.start()
            threads.append(thread)
            deadline = time.monotonic() + 5
            while len(lock._waiters) < index + 1:  # queued before the next one starts
                assert time.monotonic() < deadline, "waiter never queued"
                time.sleep(0.001)
    for thread in threads:
        thread.join(timeout=5)
    assert order == [0, 1, 2, 3, 4]


def _cell(system: str, role: str, workload: str, concurrency: int, rate: float) -> Cell:
    return Cell("postgres", workload, system, role, concurrency, 1, 1, 1.0, rate, rate, 1.0, 2.0)


def test_targets_compare_cells_of_the_same_concurrency() -> None:
    run = Run(
        cells=[
            _cell("evstore", "subject", "W2", 50, 12_000),
            _cell("eventsourcing", "peer", "W2", 50, 1_000),
            _cell("eventsourcing", "peer", "W2", 1, 100_000),
            _cell("raw unnest", "limit", "W2", 50, 20_000),
            _cell("raw copy", "limit", "W2", 50, 24_000),
        ]
    )
    checks = {check.target: check for check in check_targets(run)}
    assert checks["PG W2, 50 writers: >= 10x eventsourcing"].measured == "12.0x"
    assert checks["PG W2, 50 writers: >= 10x eventsourcing"].met is True
    assert checks["PG W2, 50 writers: >= 10,000 appends/s"].met is True
    assert checks["PG W6: append p99 <= 20 ms (W2, 50 writers)"].met is True
    assert checks["PG W1, 1 writer: >= 3x eventsourcing"].met is None
    table = next(t for t in run_tables(run) if t.title.startswith("W2"))
    evstore_row = next(row for row in table.rows if row[0] == "evstore")
    assert evstore_row[-2:] == ["12.0x", "50%"]  # the limit is the faster raw variant
    assert "| evstore | 50 |" in render(table, markdown=True)


def test_a_reference_is_listed_but_enters_no_ratio() -> None:
    run = Run(
        cells=[
            _cell("evstore", "subject", "W1", 1, 50_000),
            _cell("eventsourcing", "peer", "W1", 1, 25_000),
            _cell("raw unnest", "limit", "W1", 1, 100_000),
            _cell("raw unnest + ids", "reference", "W1", 1, 400_000),
        ]
    )
    checks = {check.target: check for check in check_targets(run)}
    assert checks["PG W1, 1 writer: >= 50 % of raw"].measured == "50%"
    table = next(t for t in run_tables(run) if t.title.startswith("W1"))
    assert [row[0] for row in table.rows] == [
        "evstore",
        "eventsourcing",
        "raw unnest",
        "raw unnest + ids",
    ]
    assert table.rows[-1][-2:] == ["", ""]


async def test_raw_reference_stores_a_unique_event_id_per_event(postgres_url: str) -> None:
    target = RawPostgresTarget(
        postgres_url, "bench_ref", method="unnest", pool_size=2, event_ids=True
    )
    await target.open()
    try:
        append = target.appender(100)
        await append()
        await append()
    finally:
        await target.close()
    conn = await asyncpg.connect(postgres_url)
    try:
        rows = await conn.fetchval("SELECT count(DISTINCT event_id) FROM bench_ref.events")
        assert rows == 200
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO bench_ref.events"
                " (stream_id, version, type, data, created_at, event_id)"
                " SELECT 'other', 1, 'E', ''::bytea, now(), event_id"
                " FROM bench_ref.events LIMIT 1"
            )
    finally:
        await conn.close()


def test_unknown_workloads_are_refused() -> None:
    assert parse_workloads(["w2,W1"]) == ("W1", "W2")
    assert parse_workloads([]) == ("W1", "W2", "W3", "W4", "W5", "W6")
    with pytest.raises(ValueError, match="W9"):
        parse_workloads(["W9"])


def test_runner_measures_sqlite_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "results.json"
    status = main(
        [
            "--backend", "sqlite", "--only", "W1,W2", "--quick", "--seconds", "0.2",
            "--warmup", "0", "--sqlite-dir", str(tmp_path), "--output", str(output),
        ]
    )  # fmt: skip
    assert status == 0
    run = Run.from_json(json.loads(output.read_text()))
    systems = {(cell.workload, cell.system) for cell in run.cells}
    assert ("W1", "evstore") in systems and ("W2", "raw sqlite3") in systems
    assert all(cell.ops > 0 for cell in run.cells)
    assert "W2 append 1 event per operation (SQLite)" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # scratch files removed


def test_cli_bench_scans_sqlite(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["--url", f"sqlite:///{tmp_path / 'mine.db'}", "bench", "--only", "W5", "--seconds", "0.2",
         "--sqlite-dir", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "W5 read $all from the origin (SQLite)" in result.output
    assert "growth" in result.output
    assert not (tmp_path / "mine.db").exists()  # the store's own file is never touched
