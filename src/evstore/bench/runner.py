"""The benchmark runner: which workloads on which backends, the scratch database, output.

``python benchmarks/run.py --help`` (or ``python -m evstore.bench``) for the full suite;
``evstore bench`` runs :func:`run_suite` with :meth:`Settings.quick`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from evstore.bench import _workloads as w
from evstore.bench._machine import describe_machine
from evstore.bench._results import Run
from evstore.bench._sites import PostgresSite, SqliteSite
from evstore.bench._workloads import Progress, Settings
from evstore.bench.systems import Backend, missing_peer

__all__ = ["DEFAULT_ADMIN_URL", "Plan", "run_suite", "scratch_database"]

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ALL_WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6")
SQLITE_WORKLOADS = ("W1", "W2", "W5", "W6")

PG_WRITERS = ("evstore", "eventsourcing", "raw unnest", "raw copy")
PG_OTHERS = ("evstore", "eventsourcing", "raw unnest")
# W1 also measures the limit's table with a unique event id (a reference, in no ratio).
PG_BATCH_WRITERS = (*PG_WRITERS, "raw unnest + ids")
SQLITE_SYSTEMS = ("evstore", "eventsourcing", "raw sqlite3")


async def check_durable(
    site: PostgresSite,
    allow_non_durable: bool,
    meta: dict[str, Any],
    notes: list[str],
    progress: Callable[[str], None],
) -> None:
    """Record the server's settings in ``meta`` and refuse (or, when allowed, note) a
    server whose commits are not durable: figures from it compare with nothing.

    Raises:
        NotDurableError: fsync is off or synchronous_commit is off, and not allowed.
    """
    settings = await site.settings()
    meta["postgres"] = settings
    if settings["fsync"] != "on" or settings["synchronous_commit"] == "off":
        message = (
            f"PostgreSQL commits are not durable (fsync={settings['fsync']}, "
            f"synchronous_commit={settings['synchronous_commit']})"
        )
        if not allow_non_durable:
            raise NotDurableError(message + "; refusing to measure")
        notes.append(message + "; figures are NOT comparable")
    progress(
        f"PostgreSQL {settings['server_version']}: fsync={settings['fsync']} "
        f"synchronous_commit={settings['synchronous_commit']}"
    )


class NotDurableError(RuntimeError):
    """The server does not make commits durable; its figures would mean nothing."""


@dataclass(frozen=True)
class Plan:
    """What to run. PostgreSQL runs in a scratch database created on ``admin_url`` (and
    dropped), or, given ``database_url``, in scratch schemas of that database."""

    backends: tuple[Backend, ...] = ("postgres", "sqlite")
    workloads: tuple[str, ...] = ALL_WORKLOADS
    settings: Settings = field(default_factory=Settings)
    admin_url: str | None = DEFAULT_ADMIN_URL
    database_url: str | None = None
    sqlite_dir: str | None = None
    allow_non_durable: bool = False


def with_database(url: str, database: str) -> str:
    """``url`` naming another database on the same server."""
    return urlunsplit(urlsplit(url)._replace(path="/" + database))


@asynccontextmanager
async def scratch_database(admin_url: str) -> AsyncIterator[str]:
    """A new database ``evstore_bench_<hex>`` (its URL), dropped on exit; nothing else is
    touched."""
    name = f"evstore_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield with_database(admin_url, name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _stderr(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


async def _backend_cells(
    site: PostgresSite | SqliteSite, plan: Plan, peer: bool, progress: Progress, run: Run
) -> None:
    s = plan.settings
    postgres = site.backend == "postgres"
    keep = (
        (lambda systems: systems)
        if peer
        else (lambda systems: tuple(x for x in systems if x != "eventsourcing"))
    )
    writers_systems = keep(PG_WRITERS if postgres else SQLITE_SYSTEMS)
    batch_systems = keep(PG_BATCH_WRITERS if postgres else SQLITE_SYSTEMS)
    other_systems = keep(PG_OTHERS if postgres else SQLITE_SYSTEMS)
    selected = set(plan.workloads) & set(ALL_WORKLOADS if postgres else SQLITE_WORKLOADS)
    if "W1" in selected:
        run.cells += await w.appends(site, batch_systems, "W1", 100, s.writers, s, progress)
    if "W2" in selected or "W6" in selected:
        # W6 reads its latencies from W2's widest cell; alone, it runs only that cell.
        writers = s.writers if "W2" in selected else (max(s.writers),)
        run.cells += await w.appends(site, writers_systems, "W2", 1, writers, s, progress)
    if "W3" in selected:
        run.cells += await w.multi_process(site, other_systems, s, progress)
    if "W4" in selected:
        run.cells += await w.stream_reads(site, other_systems, s, progress)
    if "W5" in selected:
        run.cells += await w.scan(site, other_systems, s, progress, memory=True)


async def _run_postgres(url: str, plan: Plan, peer: bool, progress: Progress, run: Run) -> None:
    site = await PostgresSite.connect(url)
    try:
        await check_durable(site, plan.allow_non_durable, run.meta, run.notes, progress)
        await _backend_cells(site, plan, peer, progress, run)
        if not site.can_checkpoint:
            run.notes.append("no CHECKPOINT privilege: cells ran without a checkpoint before")
    finally:
        await site.close()


async def run_suite(plan: Plan, progress: Progress = _stderr) -> Run:
    """Run ``plan``; every cell's figures in one :class:`Run`."""
    run = Run(meta={"machine": describe_machine(plan.sqlite_dir or ".")})
    run.meta["settings"] = asdict(plan.settings)
    run.meta["workloads"] = list(plan.workloads)
    why = missing_peer()
    if why is not None:
        run.notes.append(f"eventsourcing baselines skipped: {why}")
    for backend in plan.backends:
        if backend == "postgres":
            if plan.database_url is not None:
                await _run_postgres(plan.database_url, plan, why is None, progress, run)
            else:
                assert plan.admin_url is not None
                async with scratch_database(plan.admin_url) as url:
                    await _run_postgres(url, plan, why is None, progress, run)
        else:
            site = SqliteSite(plan.sqlite_dir)
            try:
                info = run.meta["sqlite"] = site.settings()
                progress(f"SQLite {info['sqlite_version']} in {info['directory']}")
                await _backend_cells(site, plan, why is None, progress, run)
            finally:
                await site.close()
    # Another job on the machine skews every figure: the load average shows whether one ran.
    if hasattr(os, "getloadavg"):
        run.meta["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return run


def parse_workloads(values: Sequence[str]) -> tuple[str, ...]:
    """``["W1,W2", "w6"]`` -> ``("W1", "W2", "W6")``; raises ValueError on unknown names."""
    names = [part.strip().upper() for value in values for part in value.split(",") if part]
    unknown = sorted(set(names) - set(ALL_WORKLOADS))
    if unknown:
        raise ValueError(f"unknown workload(s) {', '.join(unknown)}; known: W1 to W6")
    return tuple(name for name in ALL_WORKLOADS if name in names) or ALL_WORKLOADS


def run_plan(plan: Plan) -> Run:
    """:func:`run_suite` on a fresh event loop."""
    return asyncio.run(run_suite(plan))


def quick_plan(plan: Plan) -> Plan:
    """``plan`` with the quick settings and, unless workloads were chosen, no W3."""
    workloads = plan.workloads
    if workloads == ALL_WORKLOADS:
        workloads = tuple(x for x in ALL_WORKLOADS if x != "W3")
    return replace(plan, settings=Settings.quick(), workloads=workloads)
