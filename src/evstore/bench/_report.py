"""Results as tables: aligned text for a terminal, or Markdown for docs/benchmarks.md."""

from __future__ import annotations

from dataclasses import dataclass

from evstore.bench._results import Cell, Run
from evstore.bench._targets import check_targets, limit_of, peer_of
from evstore.bench._workloads import WORKLOADS
from evstore.bench.systems._base import ROLES

__all__ = ["Table", "render", "run_tables"]

BACKEND_NAMES = {"postgres": "PostgreSQL", "sqlite": "SQLite"}
CONCURRENCY = {"W1": "writers", "W2": "writers", "W3": "writers", "W4": "readers"}


@dataclass(frozen=True)
class Table:
    """A titled table of already formatted cells; the first column is left-aligned."""

    title: str
    headers: list[str]
    rows: list[list[str]]


def _number(value: float | None, digits: int = 0) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _ratios(run: Run, cell: Cell) -> tuple[str, str]:
    if cell.role != "subject":
        return "", ""
    peer, limit = peer_of(run, cell), limit_of(run, cell)
    vs_peer = f"{cell.events_per_s / peer.events_per_s:.1f}x" if peer and peer.events_per_s else ""
    vs_limit = (
        f"{cell.events_per_s / limit.events_per_s:.0%}" if limit and limit.events_per_s else ""
    )
    return vs_peer, vs_limit


def _load_table(run: Run, backend: str, workload: str) -> Table | None:
    cells = [c for c in run.cells if (c.backend, c.workload) == (backend, workload)]
    if not cells:
        return None
    cells.sort(key=lambda c: (c.concurrency, ROLES.index(c.role)))
    title = f"{workload} {WORKLOADS[workload]} ({BACKEND_NAMES[backend]})"
    if workload == "W3":
        title += f": {run.meta.get('settings', {}).get('processes', '?')} processes"
    headers = ["system", CONCURRENCY[workload], "events/s", "ops/s", "p50 ms", "p99 ms"]
    headers += ["vs peer", "vs limit"]
    rows = []
    for cell in cells:
        rows.append(
            [
                cell.system,
                str(cell.concurrency),
                _number(cell.events_per_s),
                _number(cell.ops_per_s),
                _number(cell.p50_ms, 2),
                _number(cell.p99_ms, 2),
                *_ratios(run, cell),
            ]
        )
    return Table(title, headers, rows)


def _scan_table(run: Run, backend: str) -> Table | None:
    cells = [c for c in run.cells if (c.backend, c.workload) == (backend, "W5")]
    if not cells:
        return None
    cells.sort(key=lambda c: ROLES.index(c.role))
    rows = [
        [c.system, f"{c.ops * c.events_per_op:,}", _number(c.events_per_s), *_ratios(run, c)]
        for c in cells
    ]
    for c in run.cells:
        if (c.backend, c.workload) == (backend, "W5-memory"):
            extra = c.extra
            rows.append(
                [
                    f"{c.system} (fresh process, RSS {extra.get('rss_start_mb', 0):.0f} -> "
                    f"{extra.get('rss_peak_mb', 0):.0f} MB, growth "
                    f"{extra.get('rss_growth_mb', 0):.1f} MB)",
                    f"{int(extra.get('events', 0)):,}",
                    _number(c.events_per_s),
                    "",
                    "",
                ]
            )
    title = f"W5 {WORKLOADS['W5']} ({BACKEND_NAMES[backend]}), pages of 1,000"
    return Table(title, ["system", "events", "events/s", "vs peer", "vs limit"], rows)


def _latency_table(run: Run, backend: str) -> Table | None:
    cells = [c for c in run.cells if (c.backend, c.workload) == (backend, "W2")]
    if not cells:
        return None
    top = max(c.concurrency for c in cells)
    rows = [
        [c.system, str(c.concurrency), _number(c.p50_ms, 2), _number(c.p99_ms, 2)]
        for c in sorted(cells, key=lambda c: ROLES.index(c.role))
        if c.concurrency == top
    ]
    title = f"W6 append latency under W2 with {top} writers ({BACKEND_NAMES[backend]})"
    return Table(title, ["system", "writers", "p50 ms", "p99 ms"], rows)


def run_tables(run: Run) -> list[Table]:
    """Every table of a run, PostgreSQL first, then the targets."""
    tables: list[Table | None] = []
    for backend in ("postgres", "sqlite"):
        for workload in ("W1", "W2", "W3", "W4"):
            tables.append(_load_table(run, backend, workload))
        tables.append(_scan_table(run, backend))
        tables.append(_latency_table(run, backend))
    checks = [check for check in check_targets(run) if check.met is not None]
    status = {True: "met", False: "MISSED", None: "not measured"}
    tables.append(
        None
        if not checks
        else Table(
            "Targets (ratios in the same run)",
            ["target", "measured", "status"],
            [[c.target, c.measured, status[c.met]] for c in checks],
        )
    )
    return [table for table in tables if table is not None]


def render(table: Table, *, markdown: bool = False) -> str:
    """``table`` as aligned text, or as a Markdown section with a pipe table."""
    if markdown:
        lines = [f"#### {table.title}", ""]
        lines.append("| " + " | ".join(table.headers) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(table.headers) - 1)) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in table.rows]
        return "\n".join(lines) + "\n"
    widths = [
        max(len(row[i]) for row in [table.headers, *table.rows]) for i in range(len(table.headers))
    ]

    def line(row: list[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = (value.rjust(width) for value, width in zip(row[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    return "\n".join([table.title, line(table.headers), *map(line, table.rows)]) + "\n"
