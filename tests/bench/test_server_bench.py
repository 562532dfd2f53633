"""The server benchmarks' own checks: the profile summary, the target arithmetic, the
command line, the appenders' bookkeeping, and a tiny real run of the quick SQLite mode
(a real ``evstore serve`` process and real kurrentdbclient clients).

The real run checks shape and bookkeeping (every acknowledged append is in its stream,
every stored event is read back, percentiles ordered), not speed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evstore import AsyncEventStore
from evstore.bench.server import (
    IN_PROCESS,
    PROCESS,
    SHARED,
    THREAD,
    VARIANTS,
    ServerCell,
    ServerRun,
    StoreAppender,
    _parser,
    main,
    plan_from_args,
    profile_lines,
    tables,
    target_rows,
)
from evstore.bench.server_process import cpu_per_op, server_process, summarise_profile


def test_profile_summary_counts_self_inclusive_and_threads() -> None:
    collapsed = "\n".join(
        [
            "thread (1): MainThread;run (asyncio/runners.py:118);"
            "Handle._run (asyncio/events.py:80) 6",
            "thread (1): MainThread;run (asyncio/runners.py:118);append (evstore/_store.py:300) 2",
            "thread (7): writer;_transaction (sqlite/writer.py:196) 2",
            "not a sample line",
        ]
    )
    summary = summarise_profile(collapsed)
    assert summary.samples == 10
    assert dict(summary.threads) == {"thread: MainThread": 0.8, "thread: writer": 0.2}
    assert summary.self_time[0] == ("Handle._run (asyncio/events.py)", 0.6)
    inclusive = dict(summary.inclusive)
    assert inclusive["run (asyncio/runners.py)"] == 0.8
    assert inclusive["_transaction (sqlite/writer.py)"] == 0.2
    assert summarise_profile("").samples == 0


def test_cpu_per_op_is_microseconds_and_none_when_unknown() -> None:
    assert cpu_per_op(1.0, 1.5, 1000) == 500.0
    assert cpu_per_op(None, 1.5, 1000) is None
    assert cpu_per_op(1.0, 1.5, 0) is None


def _b1(backend: str, variant: str, rate: float) -> ServerCell:
    figures: dict[str, Any] = {
        "clients": 50,
        "appends": int(rate * 10),
        "seconds": 10.0,
        "appends_per_s": rate,
        "p50_ms": 9.0,
        "p99_ms": 20.0,
        "server_cpu_us": 400.0 if variant == PROCESS else None,
        "client_cpu_us": 300.0,
        "server_cores": None,
        "client_cores": 0.5,
    }
    return ServerCell(backend, "B1", variant, variant, figures)


def test_targets_compare_the_headline_variant_with_in_process() -> None:
    run = ServerRun(
        cells=[
            _b1("sqlite", IN_PROCESS, 10_000.0),
            _b1("sqlite", PROCESS, 6_000.0),
            _b1("postgres", IN_PROCESS, 4_000.0),
            _b1("postgres", PROCESS, 1_000.0),
        ]
    )
    rows = target_rows(run)
    assert [row[2] for row in rows] == ["met", "met", "MISSED", "MISSED"]
    assert rows[1][1].startswith("60%")
    assert rows[3][1].startswith("25%")
    rendered = [table.title for table in tables(run)]
    assert len(rendered) == 3  # B1 per backend, then the targets
    b1 = tables(run)[0]
    assert b1.rows[1][-1] == "60%"  # vs in-process


def test_results_survive_a_json_round_trip() -> None:
    run = ServerRun(meta={"settings": {"read_passes": 3}}, cells=[_b1("sqlite", PROCESS, 5.0)])
    again = ServerRun.from_json(json.loads(json.dumps(run.to_json())))
    assert again.cells == run.cells
    assert again.meta == run.meta


def test_the_command_line_checks_names_and_sizes() -> None:
    parse = _parser().parse_args
    plan = plan_from_args(parse(["--variants", "shared,in-process", "--only", "b2"]))
    assert plan.variants == (IN_PROCESS, SHARED)
    assert plan.workloads == ("B2",)
    assert plan_from_args(parse([])).variants == VARIANTS
    with pytest.raises(ValueError, match="unknown variant"):
        plan_from_args(parse(["--variants", "cloud"]))
    with pytest.raises(ValueError, match="multiple"):
        plan_from_args(parse(["--read-events", "1500"]))
    with pytest.raises(ValueError, match="--profile"):
        plan_from_args(parse(["--profile-gil"]))
    assert main(["--backends", "oracle"]) == 2


async def test_store_appender_check_fails_when_the_stream_disagrees() -> None:
    store = await AsyncEventStore("memory://server-bench-check").open()
    try:
        appender = StoreAppender(store)
        for _ in range(3):
            await appender()
        await appender.check()
        appender.count = 4  # claims one more acknowledged append than the stream holds
        with pytest.raises(RuntimeError, match="version 3 after 4 appends"):
            await appender.check()
    finally:
        await store.close()


async def test_server_process_serves_and_stops_cleanly(tmp_path: Path) -> None:
    from kurrentdbclient import AsyncKurrentDBClient, NewEvent, StreamState

    async with server_process(f"sqlite:///{tmp_path / 'probe.db'}") as server:
        client = AsyncKurrentDBClient(server.uri)
        await client.connect()
        try:
            await client.append_to_stream(
                "probe",
                events=NewEvent(type="T", data=b"{}"),
                current_version=StreamState.NO_STREAM,
            )
            assert await client.get_current_version("probe") == 0
        finally:
            await client.close()
        assert server.cpu_seconds() is not None
    assert server.process.returncode == 0


def test_quick_sqlite_run_writes_every_cell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "server.json"
    argv = ["--quick", "--backends", "sqlite", "--seconds", "0.5", "--warmup", "0.2"]
    argv += ["--clients", "4", "--read-events", "500", "--read-passes", "2"]
    argv += ["--sqlite-dir", str(tmp_path), "--json", str(results)]
    assert main(argv) == 0
    data = json.loads(results.read_text())
    run = ServerRun.from_json(data)
    assert data["meta"]["settings"]["clients"] == 4
    assert data["meta"]["machine"]["versions"]["kurrentdbclient"] == "1.3.5"
    assert [(c.workload, c.variant) for c in run.cells] == [
        ("B1", IN_PROCESS),
        ("B1", PROCESS),
        ("B1", SHARED),
        ("B1", THREAD),
        ("B2", IN_PROCESS),
        ("B2", PROCESS),
        ("B2", THREAD),
    ]
    for cell in run.cells:
        f = cell.figures
        assert cell.backend == "sqlite"
        assert ("-m evstore.cli --url sqlite:///" in cell.server) == (
            cell.variant in (PROCESS, SHARED)
        )
        if cell.workload == "B1":
            assert f["clients"] == 4
            assert f["appends"] > 0
            assert f["appends_per_s"] > 0
            assert 0 < f["p50_ms"] <= f["p99_ms"]
            assert f["client_cpu_us"] > 0
            assert (f["server_cpu_us"] is not None) == (cell.variant in (PROCESS, SHARED))
        else:
            assert f["events"] == 500
            assert len(f["passes"]) == 2
            assert f["seconds"] == min(f["passes"])
            assert f["events_per_s"] > 0
            assert (f["server_cpu_us"] is not None) == (cell.variant == PROCESS)
    out = capsys.readouterr().out
    assert "B1 appends" in out and "B2 $all read" in out
    assert "SQLite B1: >= 5,000 appends/s over gRPC" in out


def test_profile_lines_show_threads_and_top_functions() -> None:
    summary = summarise_profile(
        "thread (1): MainThread;serve (cli/_serve.py:1);Handle._run (asyncio/events.py:80) 3\n"
        "thread (2): writer;_transaction (sqlite/writer.py:196) 1\n"
    )
    cell = _b1("sqlite", PROCESS, 900.0)
    cell.profile = {"sqlite-B1-process-server": {"file": "/tmp/x.txt", **summary.as_json()}}
    lines = profile_lines(ServerRun(cells=[cell]), top=1)
    assert lines == [
        "profile sqlite-B1-process-server: 4 samples, /tmp/x.txt",
        "  threads: thread: MainThread 75%, thread: writer 25%",
        "  self:",
        "     75.0%  Handle._run (asyncio/events.py)",
        "  inclusive (evstore, grpc.aio, kurrentdbclient):",
        "     25.0%  _transaction (sqlite/writer.py)",  # the outer frames are left out
    ]


def test_memory_backend_measures_appends_only(tmp_path: Path) -> None:
    results = tmp_path / "memory.json"
    argv = ["--backends", "memory", "--variants", "in-process,process", "--seconds", "0.3"]
    argv += ["--warmup", "0.1", "--clients", "3", "--json", str(results)]
    assert main(argv) == 0
    run = ServerRun.from_json(json.loads(results.read_text()))
    assert [(c.backend, c.workload, c.variant) for c in run.cells] == [
        ("memory", "B1", IN_PROCESS),
        ("memory", "B1", PROCESS),
    ]
    assert all(cell.figures["appends"] > 0 for cell in run.cells)
    assert "--url memory://" in run.cells[1].server
    assert any("memory: B2 not measured" in note for note in run.notes)
    assert target_rows(run) == []  # the targets are about SQLite and PostgreSQL
