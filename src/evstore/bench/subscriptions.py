"""Subscription benchmarks: evstore's subscriptions beside eventsourcing's, in one run.

* **S1 append-to-delivery latency.** A writer appends one event per call at a steady
  ``rate`` (default 1,000 appends/s: an open-loop schedule shared by ``lanes`` writers,
  each on its own stream) for ``warmup + seconds``; one subscriber on ``$all`` takes the
  events. Latency = from just before the append call (the time travels in the event's
  data) to the moment the subscriber holds the event; p50, p99 and max over the events
  sent in the measured window, and the append rate achieved. evstore: a persistent
  subscription (``buffer_size`` 100, one ack per batch), a transient ``subscribe("$all")``,
  and on PostgreSQL a persistent subscriber in a second store (woken by LISTEN/NOTIFY
  only). eventsourcing: its recorder's ``subscribe()`` (see
  :mod:`evstore.bench.subscription_peer`).
* **S2 catch-up throughput.** ``catch_up_events`` events are appended beforehand (1,000
  per append, 1,000 per stream); then a new subscription from the origin reads (evstore:
  and acks) them all; events/s, the faster of ``catch_up_passes`` timed passes after one
  untimed pass (as W5: the first read after a bulk write sets hint bits).

Every cell gets a fresh PostgreSQL schema in a scratch database (or a fresh SQLite file),
preceded by a ``CHECKPOINT``; commits are durable (the run refuses a server without).
Entry point: ``benchmarks/subscriptions.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from evstore import AsyncEventStore
from evstore.bench import subscription_evstore as ev
from evstore.bench._data import new_stream_id
from evstore.bench._machine import describe_machine
from evstore.bench._report import Table, render
from evstore.bench._results import RunRecord
from evstore.bench._sites import PostgresSite, SqliteSite
from evstore.bench.runner import (
    DEFAULT_ADMIN_URL,
    NotDurableError,
    check_durable,
    scratch_database,
)
from evstore.bench.systems import make_target, missing_peer
from evstore.bench.systems.evstore_target import EvstoreTarget

__all__ = [
    "SubscriptionCell",
    "SubscriptionPlan",
    "SubscriptionRun",
    "SubscriptionSettings",
    "main",
    "run_subscriptions",
    "tables",
]

Progress = Callable[[str], None]
BACKENDS = ("postgres", "sqlite", "memory")
WORKLOADS = ("S1", "S2")
SYSTEMS = ("evstore", "eventsourcing")
TARGET_RATE = 1000.0
BACKEND_NAMES = {"postgres": "PostgreSQL", "sqlite": "SQLite", "memory": "memory"}
PER_STREAM = 1000
LATENCY_TARGET_MS = 10.0
CATCH_UP_TARGET = 2.0
RATE_TOLERANCE = 0.95


@dataclass(frozen=True)
class SubscriptionSettings:
    """How long, how fast and how big each cell is."""

    seconds: float = 10.0
    warmup: float = 2.0
    rates: tuple[float, ...] = (1000.0, 200.0)
    """S1's append rates: the issue's 1,000/s, and a rate the peer sustains on PostgreSQL
    too (it tops out at a few hundred single-event appends/s there), so latencies are
    also compared where neither system queues."""
    lanes: int = 4
    """S1's concurrent writers. Four is the fewest that keep up with 1,000 single-event
    appends/s here (each append waits for two durable commits, about 4 ms); more writers
    only add queueing behind the commits in progress (8 lanes: append p99 +2-4 ms; see
    docs/benchmarks.md, which shows both)."""
    buffer_size: int = 100
    checkpoint_threshold: int = 1
    """Persistent subscriptions' ``checkpoint_threshold`` (S1 and S2); 1 is evstore's
    default: the checkpoint is stored after every acknowledged batch."""
    drain: float = 30.0
    catch_up_events: int = 100_000
    catch_up_buffer_size: int = 1000
    catch_up_max_size: int = 5000
    catch_up_passes: int = 3

    @classmethod
    def quick(cls) -> SubscriptionSettings:
        """A few seconds per cell and a smaller log."""
        return cls(seconds=3.0, warmup=1.0, catch_up_events=20_000, catch_up_passes=1)


@dataclass(frozen=True)
class SubscriptionPlan:
    """Which workloads on which backends; PostgreSQL in a scratch database on
    ``admin_url`` (created and dropped by the run)."""

    backends: tuple[str, ...] = ("postgres", "sqlite")
    workloads: tuple[str, ...] = WORKLOADS
    systems: tuple[str, ...] = SYSTEMS
    settings: SubscriptionSettings = field(default_factory=SubscriptionSettings)
    admin_url: str = DEFAULT_ADMIN_URL
    sqlite_dir: str | None = None
    second_store: bool = True
    allow_non_durable: bool = False


@dataclass
class SubscriptionCell:
    """One system's figures in one workload on one backend.

    ``variant`` tells evstore's subscriptions apart (``persistent``, ``transient``,
    ``persistent, second store``, ``persistent, transient=True``); ``figures`` holds S1's
    :class:`~evstore.bench.subscription_common.LiveFigures` fields or S2's ``events``,
    ``seconds``, ``events_per_s``.
    """

    backend: str
    workload: str
    system: str
    variant: str
    role: str
    mechanism: str
    figures: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    rate: float = 0.0
    """S1: the append rate asked (appends/s); 0 for S2."""


@dataclass
class SubscriptionRun(RunRecord[SubscriptionCell]):
    """A whole run: its cells, where and how it ran, and notes."""

    cell_class = SubscriptionCell

    def peer(self, backend: str, workload: str, rate: float = 0.0) -> SubscriptionCell | None:
        """The peer's cell of ``workload`` on ``backend`` (S1: at ``rate``)."""
        for cell in self.cells:
            if (cell.backend, cell.workload, cell.role, cell.rate) == (
                backend,
                workload,
                "peer",
                rate,
            ):
                return cell
        return None

    def find(
        self, backend: str, workload: str, variant: str, rate: float = 0.0
    ) -> SubscriptionCell | None:
        """evstore's cell of ``variant`` (S1: at ``rate``)."""
        for cell in self.cells:
            if (cell.backend, cell.workload, cell.system, cell.variant, cell.rate) == (
                backend,
                workload,
                "evstore",
                variant,
                rate,
            ):
                return cell
        return None


# -- where cells run -------------------------------------------------------------------


@dataclass
class EvstorePair:
    """The writer's store, the subscriber's store (the same one unless a second store was
    asked for) and the target that made them (for filling)."""

    target: EvstoreTarget
    store: AsyncEventStore
    subscriber: AsyncEventStore


@dataclass
class Peer:
    """An opened peer recorder (eventsourcing's ``ApplicationRecorder``), its subscription
    mechanism's short name (the tables) and description (the results file)."""

    recorder: Any
    variant: str
    mechanism: str


class Place(ABC):
    """A backend's scratch area: each cell opens its systems on a fresh location."""

    backend: str
    second_store: bool = True

    async def close(self) -> None:
        """Remove everything the place made (nothing by default)."""
        return None

    async def prepare(self) -> None:
        """Settle the database before a measured cell (nothing to do by default)."""
        return None

    @abstractmethod
    def evstore(self, second: bool = False) -> Any:
        """``async with``: an :class:`EvstorePair` on a fresh location."""

    @abstractmethod
    def peer(self) -> Any:
        """``async with``: a :class:`Peer` on a fresh location."""


class PostgresPlace(Place):
    """Schemas of one scratch database (see :class:`~evstore.bench._sites.PostgresSite`)."""

    backend = "postgres"

    def __init__(self, site: PostgresSite) -> None:
        self.site = site

    async def close(self) -> None:
        await self.site.close()

    async def prepare(self) -> None:
        await self.site.prepare()

    @asynccontextmanager
    async def evstore(self, second: bool = False) -> AsyncIterator[EvstorePair]:
        spec = self.site.spec("evstore")
        target = make_target(spec)
        assert isinstance(target, EvstoreTarget)
        other: AsyncEventStore | None = None
        try:
            await target.open()
            if second:
                other = await AsyncEventStore(
                    spec.location, schema=spec.schema, auto_init=False
                ).open()
            yield EvstorePair(target, target.store, other or target.store)
        finally:
            if other is not None:
                await other.close()
            await target.close()
            await self.site.discard(spec)

    @asynccontextmanager
    async def peer(self) -> AsyncIterator[Peer]:
        from evstore.bench.systems._eventsourcing import EventsourcingTarget

        spec = self.site.spec("eventsourcing")
        target = make_target(spec)
        assert isinstance(target, EventsourcingTarget)
        try:
            await target.open()
            yield Peer(
                target.recorder,
                "subscribe(), LISTEN/NOTIFY",
                "PostgresApplicationRecorder.subscribe(): LISTEN thread + pull thread",
            )
        finally:
            await target.close()
            await self.site.discard(spec)


class SqlitePlace(Place):
    """Files in a temporary directory (see :class:`~evstore.bench._sites.SqliteSite`)."""

    backend = "sqlite"
    second_store = False  # another store on the file learns of appends by polling only

    def __init__(self, site: SqliteSite) -> None:
        self.site = site

    async def close(self) -> None:
        await self.site.close()

    @asynccontextmanager
    async def evstore(self, second: bool = False) -> AsyncIterator[EvstorePair]:
        spec = self.site.spec("evstore")
        target = make_target(spec)
        assert isinstance(target, EvstoreTarget)
        other: AsyncEventStore | None = None
        try:
            await target.open()
            if second:
                other = await AsyncEventStore(f"sqlite:///{spec.location}").open()
            yield EvstorePair(target, target.store, other or target.store)
        finally:
            if other is not None:
                await other.close()
            await target.close()
            await self.site.discard(spec)

    @asynccontextmanager
    async def peer(self) -> AsyncIterator[Peer]:
        from evstore.bench import subscription_peer as pe

        spec = self.site.spec("eventsourcing")
        opened = await asyncio.to_thread(pe.open_sqlite, spec.location)
        try:
            yield Peer(opened.recorder, "stand-in: pull thread, in-process wake", opened.mechanism)
        finally:
            opened.close()
            await self.site.discard(spec)


class MemoryPlace(Place):
    """evstore's in-memory backend and eventsourcing's POPO recorder: no database, so the
    figures show each library's own overhead."""

    backend = "memory"
    second_store = False

    def __init__(self) -> None:
        self._count = 0

    @asynccontextmanager
    async def evstore(self, second: bool = False) -> AsyncIterator[EvstorePair]:
        self._count += 1
        target = EvstoreTarget(f"memory://bench-subscriptions-{os.getpid()}-{self._count}")
        try:
            await target.open()
            yield EvstorePair(target, target.store, target.store)
        finally:
            await target.close()

    @asynccontextmanager
    async def peer(self) -> AsyncIterator[Peer]:
        from evstore.bench import subscription_peer as pe

        opened = pe.open_memory()
        try:
            yield Peer(opened.recorder, "subscribe() (POPO)", opened.mechanism)
        finally:
            opened.close()


# -- the workloads -------------------------------------------------------------------


def _threshold(s: SubscriptionSettings) -> str:
    """The mechanism text for a checkpoint threshold other than evstore's default."""
    return "" if s.checkpoint_threshold == 1 else f", checkpoint_threshold={s.checkpoint_threshold}"


def _s1_variants(place: Place, plan: SubscriptionPlan) -> list[tuple[str, ev.Kind, bool]]:
    variants: list[tuple[str, ev.Kind, bool]] = [
        ("persistent", "persistent", False),
        ("transient", "transient", False),
    ]
    if plan.second_store and place.second_store:
        variants.append(("persistent, second store", "persistent", True))
    return variants


async def live_cells(
    place: Place, plan: SubscriptionPlan, peer: bool, progress: Progress
) -> list[SubscriptionCell]:
    """S1 on one backend: at each rate, evstore's variants, then the peer."""
    cells = []
    for rate in plan.settings.rates:
        cells += await _live_cells_at(place, plan, peer, progress, rate)
    return cells


async def _live_cells_at(
    place: Place, plan: SubscriptionPlan, peer: bool, progress: Progress, rate: float
) -> list[SubscriptionCell]:
    s = plan.settings
    cells = []
    timing = {"warmup": s.warmup, "seconds": s.seconds, "rate": rate}
    variants = _s1_variants(place, plan) if "evstore" in plan.systems else []
    for variant, kind, second in variants:
        progress(f"{place.backend} S1 {rate:,.0f}/s evstore {variant}")
        options = ev.LiveOptions(
            kind=kind,
            buffer_size=s.buffer_size,
            checkpoint_threshold=s.checkpoint_threshold,
            lanes=s.lanes,
            drain=s.drain,
        )
        async with place.evstore(second=second) as pair:
            await place.prepare()
            figures = await ev.live(pair.store, pair.subscriber, options, **timing)
        mechanism = (
            f"subscribe_to_all_streams(buffer_size={s.buffer_size}{_threshold(s)}), ack per batch"
            if kind == "persistent"
            else 'subscribe("$all")'
        )
        if second:
            mechanism += ", subscriber in a second store"
        cells.append(
            SubscriptionCell(
                place.backend,
                "S1",
                "evstore",
                variant,
                "subject",
                mechanism,
                asdict(figures),
                {**asdict(options), **timing},
                rate,
            )
        )
    if peer:
        from evstore.bench import subscription_peer as pe

        progress(f"{place.backend} S1 {rate:,.0f}/s eventsourcing")
        async with place.peer() as opened:
            await place.prepare()
            figures = await asyncio.to_thread(
                pe.live, opened.recorder, lanes=s.lanes, drain=s.drain, **timing
            )
        cells.append(
            SubscriptionCell(
                place.backend,
                "S1",
                "eventsourcing",
                opened.variant,
                "peer",
                opened.mechanism,
                asdict(figures),
                {"lanes": s.lanes, "drain": s.drain, **timing},
                rate,
            )
        )
    return cells


def _catch_up_cell(
    backend: str,
    system: str,
    variant: str,
    mechanism: str,
    results: list[tuple[int, float]],
    expected: int,
    options: dict[str, Any],
) -> SubscriptionCell:
    for count, _seconds in results:
        if count != expected:
            raise RuntimeError(f"{system} {variant} caught up {count} events of {expected}")
    seconds = min(elapsed for _count, elapsed in results)
    figures: dict[str, Any] = {
        "events": float(expected),
        "seconds": round(seconds, 3),
        "events_per_s": round(expected / seconds, 1),
        "passes": [round(elapsed, 3) for _count, elapsed in results],
    }
    role = "subject" if system == "evstore" else "peer"
    return SubscriptionCell(backend, "S2", system, variant, role, mechanism, figures, options)


async def catch_up_cells(
    place: Place, plan: SubscriptionPlan, peer: bool, progress: Progress
) -> list[SubscriptionCell]:
    """S2 on one backend: evstore (persistent, then ``transient=True``), then the peer."""
    s = plan.settings
    total = s.catch_up_events
    per_stream = min(total, PER_STREAM)
    streams = total // per_stream
    if streams * per_stream != total:
        raise ValueError(f"catch-up events must be at most {PER_STREAM} or a multiple of it")
    cells = []
    variants = (("persistent", False), ("persistent, transient=True", True))
    for variant, transient in variants if "evstore" in plan.systems else ():
        progress(f"{place.backend} S2 evstore {variant} {total:,} events")
        options = ev.CatchUpOptions(
            s.catch_up_buffer_size, s.catch_up_max_size, transient, s.checkpoint_threshold
        )
        async with place.evstore() as pair:
            await pair.target.fill([new_stream_id() for _ in range(streams)], per_stream)
            await place.prepare()
            await ev.catch_up(pair.store, "warm-up", total, options)
            results = [
                await ev.catch_up(pair.store, f"catch-up-{n}", total, options)
                for n in range(s.catch_up_passes)
            ]
        mechanism = (
            f"subscribe_to_all_streams(buffer_size={options.buffer_size}, "
            f"max_size={options.max_size}{', transient=True' if transient else _threshold(s)}), "
            "ack per batch"
        )
        cells.append(
            _catch_up_cell(
                place.backend, "evstore", variant, mechanism, results, total, asdict(options)
            )
        )
    if peer:
        from evstore.bench import subscription_peer as pe

        progress(f"{place.backend} S2 eventsourcing {total:,} events")
        async with place.peer() as opened:
            await asyncio.to_thread(pe.fill, opened.recorder, streams, per_stream)
            await place.prepare()
            await asyncio.to_thread(pe.catch_up, opened.recorder, total)
            results = [
                await asyncio.to_thread(pe.catch_up, opened.recorder, total)
                for _ in range(s.catch_up_passes)
            ]
        cells.append(
            _catch_up_cell(
                place.backend,
                "eventsourcing",
                opened.variant,
                opened.mechanism + " (500 per select)",
                results,
                total,
                {},
            )
        )
    return cells


# -- the run -------------------------------------------------------------------------------


def _stderr(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


async def _run_place(
    place: Place, plan: SubscriptionPlan, peer: bool, progress: Progress, run: SubscriptionRun
) -> None:
    if "S1" in plan.workloads:
        run.cells += await live_cells(place, plan, peer, progress)
    if "S2" in plan.workloads:
        run.cells += await catch_up_cells(place, plan, peer, progress)


async def _run_postgres(
    plan: SubscriptionPlan, peer: bool, progress: Progress, run: SubscriptionRun
) -> None:
    async with scratch_database(plan.admin_url) as url:
        site = await PostgresSite.connect(url)
        place = PostgresPlace(site)
        try:
            await check_durable(site, plan.allow_non_durable, run.meta, run.notes, progress)
            await _run_place(place, plan, peer, progress, run)
            if not site.can_checkpoint:
                run.notes.append("no CHECKPOINT privilege: cells ran without a checkpoint")
        finally:
            await place.close()


async def run_subscriptions(
    plan: SubscriptionPlan, progress: Progress = _stderr
) -> SubscriptionRun:
    """Run ``plan``; every cell in one :class:`SubscriptionRun`."""
    run = SubscriptionRun(meta={"machine": describe_machine(plan.sqlite_dir or ".")})
    run.meta["settings"] = asdict(plan.settings)
    run.meta["workloads"] = list(plan.workloads)
    why = missing_peer()
    if why is not None and "eventsourcing" in plan.systems:
        run.notes.append(f"eventsourcing baselines skipped: {why}")
    peer = why is None and "eventsourcing" in plan.systems
    for backend in plan.backends:
        if backend == "postgres":
            await _run_postgres(plan, peer, progress, run)
        elif backend == "sqlite":
            site = SqliteSite(plan.sqlite_dir)
            run.meta["sqlite"] = site.settings()
            info = run.meta["sqlite"]
            progress(f"SQLite {info['sqlite_version']} in {info['directory']}")
            place = SqlitePlace(site)
            try:
                await _run_place(place, plan, peer, progress, run)
            finally:
                await place.close()
        else:
            await _run_place(MemoryPlace(), plan, peer, progress, run)
    if peer and "sqlite" in plan.backends:
        run.notes.append(
            "SQLite: eventsourcing 9.5.6's SQLiteApplicationRecorder.subscribe() raises "
            "NotImplementedError; its row is the library's ListenNotifySubscription pull "
            "thread over the SQLite recorder, woken in-process after each insert (as its "
            "POPO recorder does)"
        )
    if hasattr(os, "getloadavg"):
        run.meta["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return run


# -- tables -------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def _times(value: float, reference: float) -> str:
    return f"{value / reference:.2f}x" if reference > 0 else ""


def _live_table(run: SubscriptionRun, backend: str, rate: float) -> Table | None:
    cells = [c for c in run.cells if (c.backend, c.workload, c.rate) == (backend, "S1", rate)]
    if not cells:
        return None
    peer = run.peer(backend, "S1", rate)
    headers = ["system", "subscription", "appends/s", "delivered", "p50 ms", "p99 ms"]
    headers += ["max ms", "append p50", "append p99", "after p50", "after p99"]
    headers += ["CPU us/event", "p50 ratio", "p99 ratio", "max ratio"]
    rows = []
    for cell in sorted(cells, key=lambda c: c.role != "subject"):
        f = cell.figures
        ratios = ["", "", ""]
        if cell.role == "subject" and peer is not None:
            ratios = [_times(f[k], peer.figures[k]) for k in ("p50_ms", "p99_ms", "max_ms")]
        rows.append(
            [
                cell.system,
                cell.variant,
                f"{f['append_rate']:,.0f}",
                f"{int(f['delivered']):,}/{int(f['appended']):,}",
                _ms(f["p50_ms"]),
                _ms(f["p99_ms"]),
                _ms(f["max_ms"]),
                _ms(f["append_p50_ms"]),
                _ms(f["append_p99_ms"]),
                _ms(f.get("after_append_p50_ms")),
                _ms(f.get("after_append_p99_ms")),
                f"{f.get('cpu_us_per_event', 0):,.0f}",
                *ratios,
            ]
        )
    title = (
        f"S1 append-to-delivery latency ({BACKEND_NAMES[backend]}), {rate:,.0f} appends/s "
        "asked, 1 event each; append = the append call, after = from its return to the "
        "subscriber; CPU = this process, every thread, per event; "
        "ratio = evstore / eventsourcing (below 1: evstore faster)"
    )
    return Table(title, headers, rows)


def _catch_up_table(run: SubscriptionRun, backend: str) -> Table | None:
    cells = [c for c in run.cells if (c.backend, c.workload) == (backend, "S2")]
    if not cells:
        return None
    peer = run.peer(backend, "S2")
    rows = []
    for cell in sorted(cells, key=lambda c: c.role != "subject"):
        f = cell.figures
        ratio = ""
        if cell.role == "subject" and peer is not None:
            ratio = _times(f["events_per_s"], peer.figures["events_per_s"])
        rows.append(
            [
                cell.system,
                cell.variant,
                f"{int(f['events']):,}",
                f"{f['seconds']:.3f}",
                f"{f['events_per_s']:,.0f}",
                ratio,
            ]
        )
    settings = run.meta.get("settings", {})
    title = (
        f"S2 catch-up from the origin ({BACKEND_NAMES[backend]}): evstore buffer_size "
        f"{settings.get('catch_up_buffer_size')}, max_size {settings.get('catch_up_max_size')}"
        "; ratio = evstore / eventsourcing (above 1: evstore faster)"
    )
    return Table(title, ["system", "subscription", "events", "s", "events/s", "ratio"], rows)


def target_rows(run: SubscriptionRun) -> list[list[str]]:
    """The issue's PostgreSQL targets: [target, measured, status] rows.

    Latency against the peer is checked at every S1 rate measured (the issue asks at
    1,000 appends/s, which the peer does not sustain on a small machine; the lower rate
    compares the two where neither queues); the absolute p99 bound at 1,000/s only, and
    only when the append rate asked was reached (within 5 %).
    """
    rows: list[list[str]] = []
    rates = sorted({c.rate for c in run.cells if c.workload == "S1"}, reverse=True)
    for rate in rates:
        peer = run.peer("postgres", "S1", rate)
        for variant in ("persistent", "transient", "persistent, second store"):
            cell = run.find("postgres", "S1", variant, rate)
            if cell is None:
                continue
            f = cell.figures
            where = f"PG S1 {rate:,.0f}/s {variant}"
            if peer is not None:
                for key, name in (("p50_ms", "p50"), ("p99_ms", "p99")):
                    met = f[key] <= peer.figures[key]
                    rows.append(
                        [
                            f"{where}: {name} <= eventsourcing's",
                            f"{f[key]:.2f} vs {peer.figures[key]:.2f} ms",
                            "met" if met else "MISSED",
                        ]
                    )
            if rate == TARGET_RATE:
                at_rate = f["append_rate"] >= RATE_TOLERANCE * rate
                met = f["p99_ms"] <= LATENCY_TARGET_MS and at_rate
                rows.append(
                    [
                        f"{where}: p99 <= {LATENCY_TARGET_MS:.0f} ms at {rate:,.0f} appends/s",
                        f"{f['p99_ms']:.2f} ms at {f['append_rate']:,.0f}/s",
                        "met" if met else "MISSED",
                    ]
                )
    peer = run.peer("postgres", "S2")
    cell = run.find("postgres", "S2", "persistent")
    if cell is not None and peer is not None:
        ratio = cell.figures["events_per_s"] / peer.figures["events_per_s"]
        rows.append(
            [
                f"PG S2: >= {CATCH_UP_TARGET:.0f}x eventsourcing",
                f"{ratio:.2f}x",
                "met" if ratio >= CATCH_UP_TARGET else "MISSED",
            ]
        )
    return rows


def tables(run: SubscriptionRun) -> list[Table]:
    """Every table of a run: per backend S1 then S2, then the targets."""
    found: list[Table | None] = []
    rates = sorted({c.rate for c in run.cells if c.workload == "S1"}, reverse=True)
    for backend in BACKENDS:
        found += [_live_table(run, backend, rate) for rate in rates]
        found.append(_catch_up_table(run, backend))
    targets = target_rows(run)
    if targets:
        found.append(
            Table("Targets (PostgreSQL, same run)", ["target", "measured", "status"], targets)
        )
    return [table for table in found if table is not None]


def print_run(run: SubscriptionRun, *, markdown: bool) -> None:
    """Every table and note of ``run`` on stdout."""
    for table in tables(run):
        print(render(table, markdown=markdown))
    for note in run.notes:
        print(f"note: {note}")


# -- command line -------------------------------------------------------------------------


def _names(values: Sequence[str], known: Sequence[str], what: str) -> tuple[str, ...]:
    names = [part.strip().lower() for value in values for part in value.split(",") if part]
    unknown = sorted(set(names) - {k.lower() for k in known})
    if unknown:
        raise ValueError(f"unknown {what} {', '.join(unknown)}; known: {', '.join(known)}")
    return tuple(k for k in known if k.lower() in names)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Subscription benchmarks (S1 latency, S2 catch-up): evstore beside "
        "eventsourcing, in one run."
    )
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("EVSTORE_BENCH_ADMIN_URL", DEFAULT_ADMIN_URL),
        help="PostgreSQL URL allowed to CREATE DATABASE; the run creates evstore_bench_<hex> "
        "and drops it at the end (default %(default)s)",
    )
    parser.add_argument(
        "--backends",
        action="append",
        default=[],
        metavar="postgres,sqlite",
        help="backends to measure: postgres, sqlite, memory (default postgres,sqlite)",
    )
    parser.add_argument("--only", action="append", default=[], metavar="S1,S2")
    parser.add_argument("--quick", action="store_true", help="a few seconds per cell")
    parser.add_argument("--seconds", type=float, help="S1 measured seconds (default 10)")
    parser.add_argument("--warmup", type=float, help="S1 warm-up seconds (default 2)")
    parser.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="1000,200",
        help="S1 append rates, appends/s (default 1000 and 200)",
    )
    parser.add_argument(
        "--systems",
        action="append",
        default=[],
        metavar="evstore,eventsourcing",
        help="systems to measure (default both)",
    )
    parser.add_argument("--lanes", type=int, help="S1 writer lanes, one stream each (default 4)")
    parser.add_argument("--buffer-size", type=int, help="S1 evstore buffer_size (default 100)")
    parser.add_argument(
        "--checkpoint-threshold",
        type=int,
        help="evstore persistent subscriptions' checkpoint_threshold (default 1, evstore's)",
    )
    parser.add_argument("--catch-up-events", type=int, help="S2 events (default 100,000)")
    parser.add_argument("--catch-up-buffer-size", type=int, help="S2 buffer_size (default 1000)")
    parser.add_argument("--catch-up-max-size", type=int, help="S2 max_size (default 5000)")
    parser.add_argument(
        "--catch-up-passes", type=int, help="S2 timed passes, the fastest counts (default 3)"
    )
    parser.add_argument(
        "--no-second-store",
        action="store_true",
        help="skip the PostgreSQL S1 row with the subscriber in a second store",
    )
    parser.add_argument("--sqlite-dir", help="where the scratch SQLite files go (default $TMPDIR)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results JSON here")
    parser.add_argument(
        "--from-json", type=Path, metavar="PATH", help="print the tables of a saved run; no run"
    )
    parser.add_argument(
        "--allow-non-durable",
        action="store_true",
        help="measure even when fsync or synchronous_commit is off (figures marked)",
    )
    return parser


def plan_from_args(args: argparse.Namespace) -> SubscriptionPlan:
    """The plan the command line asks for (ValueError on unknown names)."""
    backends = _names(args.backends, BACKENDS, "backend") or ("postgres", "sqlite")
    workloads = _names(args.only, WORKLOADS, "workload") or WORKLOADS
    systems = _names(args.systems, SYSTEMS, "system") or SYSTEMS
    settings = SubscriptionSettings.quick() if args.quick else SubscriptionSettings()
    rates = [float(part) for value in args.rate for part in value.split(",") if part]
    if any(rate <= 0 for rate in rates):
        raise ValueError("rates must be positive")
    overrides = {
        "seconds": args.seconds,
        "warmup": args.warmup,
        "rates": tuple(rates) or None,
        "lanes": args.lanes,
        "buffer_size": args.buffer_size,
        "checkpoint_threshold": args.checkpoint_threshold,
        "catch_up_events": args.catch_up_events,
        "catch_up_buffer_size": args.catch_up_buffer_size,
        "catch_up_max_size": args.catch_up_max_size,
        "catch_up_passes": args.catch_up_passes,
    }
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    events = settings.catch_up_events
    if events <= 0 or (events > PER_STREAM and events % PER_STREAM):
        raise ValueError(f"--catch-up-events must be at most {PER_STREAM} or a multiple of it")
    return SubscriptionPlan(
        backends=backends,
        workloads=workloads,
        systems=systems,
        settings=settings,
        admin_url=args.admin_url,
        sqlite_dir=args.sqlite_dir,
        second_store=not args.no_second_store,
        allow_non_durable=args.allow_non_durable,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the subscription benchmarks (or print a saved run); the exit status."""
    args = _parser().parse_args(argv)
    if args.from_json is not None:
        print_run(
            SubscriptionRun.from_json(json.loads(args.from_json.read_text())),
            markdown=args.markdown,
        )
        return 0
    try:
        plan = plan_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        run = asyncio.run(run_subscriptions(plan))
    except NotDurableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print_run(run, markdown=args.markdown)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(run.to_json(), indent=1) + "\n")
        print(f"results written to {args.json}", file=sys.stderr)
    return 0
