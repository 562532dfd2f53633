"""The benchmark issue's targets, checked against a run's cells.

Ratios compare cells of the same run, backend and concurrency. "raw" is the best raw
variant of the cell (the larger of ``raw unnest`` and ``raw copy`` on PostgreSQL): the
physical limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from evstore.bench._results import Cell, Run

__all__ = ["Check", "check_targets", "limit_of", "peer_of"]

MEMORY_BOUND_MB = 100.0
LATENCY_BOUND_MS = 20.0


@dataclass(frozen=True)
class Check:
    """One target: what it asks, what was measured, whether it is met (None: not measured)."""

    target: str
    measured: str
    met: bool | None


def _peers(run: Run, cell: Cell, role: str) -> list[Cell]:
    return [
        other
        for other in run.cells
        if other.role == role
        and (other.backend, other.workload, other.concurrency)
        == (cell.backend, cell.workload, cell.concurrency)
    ]


def peer_of(run: Run, cell: Cell) -> Cell | None:
    """The peer's cell matching ``cell``."""
    peers = _peers(run, cell, "peer")
    return peers[0] if peers else None


def limit_of(run: Run, cell: Cell) -> Cell | None:
    """The fastest raw cell matching ``cell``."""
    limits = _peers(run, cell, "limit")
    return max(limits, key=lambda c: c.events_per_s) if limits else None


def _evstore(run: Run, backend: str, workload: str, concurrency: int | None) -> list[Cell]:
    return [
        c
        for c in run.cells
        if (c.backend, c.workload, c.role) == (backend, workload, "subject")
        and (concurrency is None or c.concurrency == concurrency)
    ]


def _ratio_check(
    run: Run,
    target: str,
    backend: str,
    workload: str,
    concurrency: int | None,
    *,
    peer: bool,
    bound: float,
) -> Check:
    parts, met = [], True
    for cell in _evstore(run, backend, workload, concurrency):
        other = peer_of(run, cell) if peer else limit_of(run, cell)
        if other is None or other.events_per_s == 0:
            continue
        ratio = cell.events_per_s / other.events_per_s
        met = met and ratio >= bound
        shown = f"{ratio:.1f}x" if peer else f"{ratio:.0%}"
        parts.append(shown if concurrency is not None else f"{cell.concurrency}: {shown}")
    if not parts:
        return Check(target, "not measured", None)
    return Check(target, ", ".join(parts), met)


def check_targets(run: Run) -> list[Check]:
    """Every target of the issue, in its order."""
    pg, lite = "postgres", "sqlite"
    checks = [
        _ratio_check(run, "PG W1, 1 writer: >= 3x eventsourcing", pg, "W1", 1, peer=True, bound=3),
        _ratio_check(run, "PG W1, 1 writer: >= 50 % of raw", pg, "W1", 1, peer=False, bound=0.5),
        _ratio_check(
            run, "PG W2, 50 writers: >= 10x eventsourcing", pg, "W2", 50, peer=True, bound=10
        ),
    ]
    w2 = _evstore(run, pg, "W2", 50)
    checks.append(
        Check(
            "PG W2, 50 writers: >= 10,000 appends/s",
            f"{w2[0].ops_per_s:,.0f}/s" if w2 else "not measured",
            w2[0].ops_per_s >= 10_000 if w2 else None,
        )
    )
    checks += [
        _ratio_check(run, "PG W3: >= 3x eventsourcing", pg, "W3", None, peer=True, bound=3),
        _ratio_check(run, "PG W4: >= 1.5x eventsourcing", pg, "W4", None, peer=True, bound=1.5),
        _ratio_check(run, "PG W5: >= 3x eventsourcing", pg, "W5", 1, peer=True, bound=3),
        _ratio_check(run, "PG W5: >= 40 % of raw read", pg, "W5", 1, peer=False, bound=0.4),
    ]
    for backend in (pg, lite):
        memory = _evstore(run, backend, "W5-memory", None)
        if memory:
            growth = memory[0].extra.get("rss_growth_mb", 0.0)
            events = int(memory[0].extra.get("events", 0))
            checks.append(
                Check(
                    f"{'PG' if backend == pg else 'SQLite'} W5: RSS growth < 100 MB streaming "
                    f"{events:,} events",
                    f"{growth:.1f} MB",
                    growth < MEMORY_BOUND_MB,
                )
            )
    checks.append(
        Check(
            "PG W6: append p99 <= 20 ms (W2, 50 writers)",
            f"{w2[0].p99_ms:.1f} ms (p50 {w2[0].p50_ms:.1f} ms)"
            if w2 and w2[0].p99_ms is not None
            else "not measured",
            w2[0].p99_ms <= LATENCY_BOUND_MS if w2 and w2[0].p99_ms is not None else None,
        )
    )
    checks.append(
        _ratio_check(
            run, "SQLite W2, 50 writers: >= 10x eventsourcing", lite, "W2", 50, peer=True, bound=10
        )
    )
    return checks
