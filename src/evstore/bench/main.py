"""The runner's command line (``benchmarks/run.py``, ``python -m evstore.bench``)."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path

from evstore.bench._document import update_document
from evstore.bench._report import render, run_tables
from evstore.bench._results import Run
from evstore.bench.runner import (
    DEFAULT_ADMIN_URL,
    NotDurableError,
    Plan,
    parse_workloads,
    quick_plan,
    run_plan,
)
from evstore.bench.systems import Backend

__all__ = ["main", "print_run"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="evstore beside eventsourcing and the raw database, in one run.",
    )
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("EVSTORE_BENCH_ADMIN_URL", DEFAULT_ADMIN_URL),
        help="PostgreSQL URL allowed to CREATE DATABASE; the run creates evstore_bench_<hex> "
        "on that server and drops it at the end (default %(default)s, or "
        "$EVSTORE_BENCH_ADMIN_URL)",
    )
    parser.add_argument("--backend", choices=("postgres", "sqlite", "all"), default="all")
    parser.add_argument(
        "--only", action="append", default=[], metavar="W1,W2", help="workloads (W1 to W6)"
    )
    parser.add_argument("--quick", action="store_true", help="a few seconds per cell, a subset")
    parser.add_argument("--seconds", type=float, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per cell")
    parser.add_argument("--sqlite-dir", help="where the scratch SQLite files go (default: $TMPDIR)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--output", type=Path, help="write the results JSON here")
    parser.add_argument("--no-save", action="store_true", help="do not write the results JSON")
    parser.add_argument(
        "--from-json", type=Path, metavar="FILE", help="print the tables of a saved run; no run"
    )
    parser.add_argument(
        "--update-doc",
        type=Path,
        metavar="FILE",
        help="rewrite the marked result blocks of FILE (docs/benchmarks.md) with this run",
    )
    parser.add_argument(
        "--allow-non-durable",
        action="store_true",
        help="measure even when fsync or synchronous_commit is off (figures marked)",
    )
    return parser


def print_run(run: Run, *, markdown: bool) -> None:
    """Every table of ``run`` and its notes, on stdout."""
    for table in run_tables(run):
        print(render(table, markdown=markdown))
    for note in run.notes:
        print(f"note: {note}")


def default_output(results_dir: Path) -> Path:
    """``<results_dir>/<date>-<machine>.json``."""
    return results_dir / f"{date.today().isoformat()}-{socket.gethostname()}.json"


def main(argv: Sequence[str] | None = None, *, results_dir: Path | None = None) -> int:
    """Run the suite (or print a saved run); the process exit status."""
    args = _parser().parse_args(argv)
    if args.from_json is not None:
        saved = Run.from_json(json.loads(args.from_json.read_text()))
        print_run(saved, markdown=args.markdown)
        if args.update_doc is not None:
            _update_doc(args.update_doc, saved)
        return 0
    try:
        workloads = parse_workloads(args.only)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    backends: tuple[Backend, ...] = ("postgres", "sqlite")
    if args.backend != "all":
        backends = ("postgres",) if args.backend == "postgres" else ("sqlite",)
    plan = Plan(
        backends=backends,
        workloads=workloads,
        admin_url=args.admin_url,
        sqlite_dir=args.sqlite_dir,
        allow_non_durable=args.allow_non_durable,
    )
    if args.quick:
        plan = quick_plan(plan) if not args.only else replace(quick_plan(plan), workloads=workloads)
    settings = plan.settings
    if args.seconds is not None:
        settings = replace(settings, seconds=args.seconds)
    if args.warmup is not None:
        settings = replace(settings, warmup=args.warmup)
    plan = replace(plan, settings=settings)
    try:
        run = run_plan(plan)
    except NotDurableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print_run(run, markdown=args.markdown)
    output = args.output
    if output is None and results_dir is not None and not args.no_save:
        output = default_output(results_dir)
    if output is not None and not args.no_save:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(run.to_json(), indent=1) + "\n")
        print(f"results written to {output}", file=sys.stderr)
    if args.update_doc is not None:
        _update_doc(args.update_doc, run)
    return 0


def _update_doc(path: Path, run: Run) -> None:
    path.write_text(update_document(path.read_text(), run))
    print(f"{path} updated", file=sys.stderr)
