"""The subscription benchmarks' own checks: the schedule, the figures, the target arithmetic,
and a tiny real run of the quick SQLite mode through the command line.

The real run checks shape and bookkeeping (every appended event delivered, every stored
event caught up, percentiles ordered), not speed.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from evstore.bench.subscription_common import (
    AppendLog,
    LiveFigures,
    LiveWindow,
    Pacer,
    Tally,
    sent_of,
    timed_payload,
)
from evstore.bench.subscriptions import (
    SubscriptionCell,
    SubscriptionRun,
    main,
    tables,
    target_rows,
)
from evstore.bench.systems import missing_peer


def test_timed_payload_is_the_suite_payload_size_and_carries_the_send_time() -> None:
    encoded = orjson.dumps(timed_payload(12345.678901234))
    assert 95 <= len(encoded) <= 125
    assert sent_of(encoded) == 12345.678901234


def test_pacer_hands_out_one_slot_per_interval_until_the_window_ends() -> None:
    window = LiveWindow(start=time.perf_counter(), warmup=0.0, seconds=0.01, rate=1000.0)
    pacer = Pacer(window)
    slots = []
    while (due := pacer.take()) is not None:
        slots.append(due)
    assert len(slots) == 10
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert all(abs(gap - 0.001) < 1e-9 for gap in gaps)


def test_live_figures_count_the_measured_window_only() -> None:
    window = LiveWindow(start=100.0, warmup=1.0, seconds=1.0, rate=4.0)
    log = AppendLog()
    for slot in range(8):  # 4 warm-up slots, 4 measured
        due = 100.0 + slot * 0.25
        log.record(due, due + 0.001, due + 0.003)
    tally = Tally()
    measured_sends = [100.0 + slot * 0.25 + 0.001 for slot in range(4, 8)]
    for sent, latency in zip(measured_sends, [0.004, 0.005, 0.006, 0.010], strict=True):
        tally.arrivals.append((sent, sent + latency))
    tally.add(8)
    tally.expect(8)
    assert tally.finished.is_set()
    figures = LiveFigures.of(window, log, tally, cpu_seconds=0.004)
    assert (figures.appended, figures.delivered, figures.measured_events) == (8, 8, 4)
    assert figures.append_rate == pytest.approx(4 / 0.753, abs=0.05)
    assert (figures.p50_ms, figures.p99_ms, figures.max_ms) == (5.0, 10.0, 10.0)
    assert figures.append_p50_ms == pytest.approx(2.0)
    assert figures.after_append_p50_ms == pytest.approx(3.0)  # 5 ms held - 2 ms append
    assert figures.after_append_p99_ms == pytest.approx(8.0)
    assert figures.start_lag_max_ms == pytest.approx(1.0)
    assert figures.cpu_us_per_event == pytest.approx(500.0)


def _live(
    system: str, role: str, p50: float, p99: float, rate: float, asked: float = 1000.0
) -> SubscriptionCell:
    figures: dict[str, Any] = {
        "appended": 100,
        "delivered": 100,
        "append_rate": rate,
        "p50_ms": p50,
        "p99_ms": p99,
        "max_ms": p99 * 2,
        "append_p50_ms": 1.0,
        "append_p99_ms": 2.0,
    }
    variant = "persistent" if role == "subject" else "subscribe()"
    return SubscriptionCell("postgres", "S1", system, variant, role, "", figures, {}, asked)


def _catch_up(system: str, role: str, per_s: float) -> SubscriptionCell:
    figures = {"events": 1000.0, "seconds": 1000 / per_s, "events_per_s": per_s}
    variant = "persistent" if role == "subject" else "subscribe()"
    return SubscriptionCell("postgres", "S2", system, variant, role, "", figures)


def test_targets_compare_evstore_with_the_peer_of_the_same_run() -> None:
    run = SubscriptionRun(
        cells=[
            _live("evstore", "subject", 3.0, 9.0, 990.0),
            _live("eventsourcing", "peer", 4.0, 8.0, 400.0),
            _live("evstore", "subject", 2.5, 5.0, 200.0, asked=200.0),
            _live("eventsourcing", "peer", 2.0, 6.0, 200.0, asked=200.0),
            _catch_up("evstore", "subject", 90_000.0),
            _catch_up("eventsourcing", "peer", 40_000.0),
        ]
    )
    status = {row[0]: row[2] for row in target_rows(run)}
    assert status == {
        "PG S1 1,000/s persistent: p50 <= eventsourcing's": "met",
        "PG S1 1,000/s persistent: p99 <= eventsourcing's": "MISSED",
        "PG S1 1,000/s persistent: p99 <= 10 ms at 1,000 appends/s": "met",
        "PG S1 200/s persistent: p50 <= eventsourcing's": "MISSED",
        "PG S1 200/s persistent: p99 <= eventsourcing's": "met",
        "PG S2: >= 2x eventsourcing": "met",
    }
    slow = SubscriptionRun(cells=[_live("evstore", "subject", 3.0, 9.0, 700.0)])
    assert [row[2] for row in target_rows(slow)] == ["MISSED"]  # p99 fine, rate not reached
    titles = [table.title for table in tables(run)]
    assert any(title.startswith("S1 ") for title in titles)
    assert any(title.startswith("S2 ") for title in titles)


def test_unknown_names_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--backends", "oracle"]) == 2
    assert "unknown backend" in capsys.readouterr().err
    assert main(["--only", "S9"]) == 2
    assert main(["--catch-up-events", "2500"]) == 2
    assert "multiple" in capsys.readouterr().err


def test_quick_sqlite_run_writes_every_cell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "subscriptions.json"
    argv = ["--quick", "--backends", "sqlite", "--sqlite-dir", str(tmp_path)]
    argv += ["--seconds", "0.4", "--warmup", "0.2", "--rate", "200", "--lanes", "2"]
    argv += ["--catch-up-events", "2000", "--catch-up-buffer-size", "300"]
    argv += ["--catch-up-max-size", "700", "--json", str(output)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "S1 append-to-delivery latency (SQLite), 200 appends/s" in printed
    assert "S2 catch-up from the origin (SQLite)" in printed

    run = SubscriptionRun.from_json(json.loads(output.read_text()))
    assert run.meta["settings"]["rates"] == [200.0]
    peer = missing_peer() is None
    live = {(c.system, c.variant): c for c in run.cells if c.workload == "S1"}
    expected = {("evstore", "persistent"), ("evstore", "transient")}
    if peer:
        expected.add(("eventsourcing", "stand-in: pull thread, in-process wake"))
    assert set(live) == expected
    for cell in live.values():
        f = cell.figures
        assert cell.rate == 200.0
        assert f["appended"] > 0
        assert f["delivered"] == f["appended"], cell
        assert f["measured_events"] > 0
        assert 0 < f["p50_ms"] <= f["p99_ms"] <= f["max_ms"]
        assert f["append_rate"] > 0
    catch_up = {(c.system, c.variant): c for c in run.cells if c.workload == "S2"}
    assert ("evstore", "persistent") in catch_up
    assert ("evstore", "persistent, transient=True") in catch_up
    assert len(catch_up) == 3 if peer else 2
    for cell in catch_up.values():
        assert cell.figures["events"] == 2000
        assert cell.figures["events_per_s"] > 0
    assert catch_up[("evstore", "persistent")].options["max_size"] == 700
    assert not list(tmp_path.glob("evstore_bench_*")), "scratch files left behind"
