"""Draw the throughput chart of a benchmark run: events/s against writers, per system.

    .venv/bin/python benchmarks/chart.py [results.json] [-o docs/benchmarks-throughput.png]

Without a file it takes the newest ``benchmarks/results/*.json``. Four panels: W1 (100
events per append) and W2 (1 event per append) on PostgreSQL and on SQLite; one line per
system, log-scaled events/s. Needs matplotlib (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display needed

import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE.parent / "docs" / "benchmarks-throughput.png"
PANELS = [
    ("postgres", "W1", "PostgreSQL - W1: 100 events per append"),
    ("postgres", "W2", "PostgreSQL - W2: 1 event per append"),
    ("sqlite", "W1", "SQLite - W1: 100 events per append"),
    ("sqlite", "W2", "SQLite - W2: 1 event per append"),
]
STYLES = {
    "evstore": {"color": "tab:blue", "marker": "o", "linewidth": 2.5},
    "eventsourcing": {"color": "tab:orange", "marker": "s"},
    "raw unnest": {"color": "tab:gray", "marker": "^", "linestyle": "--"},
    "raw copy": {"color": "tab:gray", "marker": "v", "linestyle": ":"},
    "raw unnest + ids": {"color": "tab:green", "marker": "^", "linestyle": "-."},
    "raw sqlite3": {"color": "tab:gray", "marker": "^", "linestyle": "--"},
}


def newest_results() -> Path:
    files = sorted((HERE / "results").glob("*.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise SystemExit("no results in benchmarks/results/; run benchmarks/run.py first")
    return files[-1]


def draw(results: dict[str, Any], output: Path) -> None:
    cells = results["cells"]
    figure, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    for axis, (backend, workload, title) in zip(axes.flat, PANELS, strict=True):
        mine = [c for c in cells if (c["backend"], c["workload"]) == (backend, workload)]
        systems = list(dict.fromkeys(c["system"] for c in mine))
        for system in systems:
            points = sorted(
                (c["concurrency"], c["events_per_s"]) for c in mine if c["system"] == system
            )
            xs, ys = zip(*points, strict=True)
            axis.plot(xs, ys, label=system, **STYLES.get(system, {}))
        axis.set_title(title)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("concurrent writers")
        axis.set_ylabel("events/s")
        ticks = sorted({c["concurrency"] for c in mine}) or [1]
        axis.set_xticks(ticks, [str(t) for t in ticks])
        axis.grid(True, which="both", alpha=0.3)
        if systems:
            axis.legend()
        else:
            axis.text(0.5, 0.5, "not measured", ha="center", transform=axis.transAxes)
    machine = results.get("meta", {}).get("machine", {})
    postgres = results.get("meta", {}).get("postgres", {})
    figure.suptitle(
        f"evstore beside eventsourcing 9.5.6 and the raw database - {machine.get('nproc')} CPUs, "
        f"PostgreSQL {postgres.get('server_version', '?').split()[0]}, durable commits, "
        f"{machine.get('date', '')[:10]}"
    )
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    print(f"chart written to {output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path, help="a results JSON file")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    path = args.results or newest_results()
    draw(json.loads(path.read_text()), args.output)


if __name__ == "__main__":
    main()
