"""Server benchmarks: ``evstore serve`` driven by the real KurrentDB client, beside the same
work done in-process through :class:`~evstore.AsyncEventStore`, in one run.

* **B1 appends.** ``clients`` (50) asyncio tasks, each appending one event per call to a
  stream of its own, stating the exact expected revision, for ``warmup + seconds``
  (closed loop: a task starts its next append when the previous one returns). Over gRPC
  each call is ``AsyncKurrentDBClient.append_to_stream(stream, events=NewEvent(...),
  current_version=...)``, which kurrentdbclient 1.3.5 sends as one ``Streams.BatchAppend``
  call; in-process it is ``store.append_to_stream(stream, version, [EventData(...)])``.
  Figures: appends/s, p50/p99 latency of one call, CPU microseconds per append of the
  server process and of the client process, and the ratio gRPC / in-process.
* **B2 ``$all`` read.** ``read_events`` (100,000) events are stored beforehand (1,000 per
  stream); then ``client.read_all(filter_exclude=[], filter_include=[])`` (no filter, so
  the server filters nothing) reads them all, against ``store.stream_all_forward()`` in
  this process on the same data; events/s, the faster of ``read_passes`` timed passes
  after one untimed pass.

Where the server runs (``variant``):

* ``process`` (the headline): ``python -m evstore.cli ... serve`` in a child process,
  so that the clients and the server do not share one GIL; one ``AsyncKurrentDBClient``
  (one gRPC channel) per task.
* ``process, shared client``: the same server, one client shared by every task (B1 only).
* ``thread``: :class:`~evstore.server.app.BackgroundServer`, a thread of the benchmark's
  own process (one GIL for the server and the clients); one client per task.
* ``in-process``: no server, the store in the benchmark's process.

Backends: SQLite and PostgreSQL; on request also ``memory`` (``memory://`` stores, B1
only), which shows what the gRPC path costs with the cheapest store there is.

The server and the in-process store use the same store options (the defaults: on
PostgreSQL a pool of 10). Each B1 cell gets a fresh SQLite file or PostgreSQL schema (in a
scratch database created on ``--admin-url`` and dropped at the end, after a
``CHECKPOINT``); commits are durable (the run refuses a PostgreSQL server without).
Entry point: ``benchmarks/server.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from evstore import AsyncEventStore, EventData
from evstore.bench._data import EVENT_TYPE, PAYLOAD, PAYLOAD_BYTES, new_stream_id
from evstore.bench._machine import describe_machine, version_of
from evstore.bench._report import Table, render
from evstore.bench._results import RunRecord
from evstore.bench._sites import PostgresSite, Site, SqliteSite
from evstore.bench._timing import LoadResult, run_async_load
from evstore.bench.runner import (
    DEFAULT_ADMIN_URL,
    NotDurableError,
    check_durable,
    scratch_database,
)
from evstore.bench.server_process import (
    Profiler,
    cores,
    cpu_per_op,
    names,
    process_cpu_seconds,
    server_process,
)
from evstore.bench.systems import TargetSpec
from evstore.bench.systems.evstore_target import EvstoreTarget

__all__ = [
    "ServerCell",
    "ServerPlan",
    "ServerRun",
    "ServerSettings",
    "main",
    "run_server_benchmarks",
    "tables",
    "target_rows",
]

Progress = Callable[[str], None]

MEMORY = "memory"
BACKENDS = ("sqlite", "postgres", MEMORY)
DEFAULT_BACKENDS = ("sqlite", "postgres")
BACKEND_NAMES = {"postgres": "PostgreSQL", "sqlite": "SQLite", MEMORY: "memory"}
WORKLOADS = ("B1", "B2")
IN_PROCESS = "in-process"
PROCESS = "process"
SHARED = "process, shared client"
THREAD = "thread"
VARIANTS = (IN_PROCESS, PROCESS, SHARED, THREAD)
VARIANT_OPTIONS = {"in-process": IN_PROCESS, "process": PROCESS, "shared": SHARED, "thread": THREAD}
DESCRIPTIONS = {
    IN_PROCESS: "AsyncEventStore in the benchmark's process, no server",
    PROCESS: "evstore serve in its own process; one AsyncKurrentDBClient per task",
    SHARED: "evstore serve in its own process; one AsyncKurrentDBClient for all tasks",
    THREAD: "BackgroundServer in a thread of the benchmark's process; one client per task",
}
PER_STREAM = 1000
TARGET_APPENDS = 5000.0
TARGET_RATIO = 0.5


@dataclass(frozen=True)
class ServerSettings:
    """How long and how big each cell is."""

    seconds: float = 10.0
    warmup: float = 2.0
    clients: int = 50
    read_events: int = 100_000
    read_passes: int = 3
    read_batch_size: int = 1000
    """In-process ``stream_all_forward(batch_size=...)``: the library's default (the
    server reads ``$all`` 500 rows per query)."""

    @classmethod
    def quick(cls) -> ServerSettings:
        """A few seconds per cell and a smaller log: a smoke run."""
        return cls(seconds=3.0, warmup=1.0, read_events=20_000, read_passes=1)


@dataclass(frozen=True)
class ServerPlan:
    """What to run where. PostgreSQL runs in a scratch database created on ``admin_url``."""

    backends: tuple[str, ...] = DEFAULT_BACKENDS
    """``memory`` too on request: the gRPC cost with the cheapest store (B1 only)."""
    workloads: tuple[str, ...] = WORKLOADS
    variants: tuple[str, ...] = VARIANTS
    settings: ServerSettings = field(default_factory=ServerSettings)
    admin_url: str = DEFAULT_ADMIN_URL
    sqlite_dir: str | None = None
    allow_non_durable: bool = False
    server_src: str | None = None
    """A directory put first on the server process's ``PYTHONPATH`` (to measure a
    patched copy of the server against the same clients); default the benchmark's own."""
    profile_dir: Path | None = None
    profile_gil: bool = False


@dataclass
class ServerCell:
    """One variant's figures in one workload on one backend.

    B1 ``figures``: ``clients``, ``appends``, ``seconds``, ``appends_per_s``, ``p50_ms``,
    ``p99_ms``, ``server_cpu_us`` and ``client_cpu_us`` (per append; the thread and
    in-process variants have one process, counted as the client), ``server_cores``,
    ``client_cores``. B2: ``events``, ``seconds``, ``events_per_s``, ``passes``,
    ``server_cpu_us`` and ``client_cpu_us`` per event.
    """

    backend: str
    workload: str
    variant: str
    description: str
    figures: dict[str, Any]
    profile: dict[str, Any] = field(default_factory=dict)
    server: str = ""
    """How the server ran: the ``evstore serve`` command line, or ``BackgroundServer``."""


@dataclass
class ServerRun(RunRecord[ServerCell]):
    """A whole run: its cells, where and how it ran, and notes."""

    cell_class = ServerCell

    def find(self, backend: str, workload: str, variant: str) -> ServerCell | None:
        for cell in self.cells:
            if (cell.backend, cell.workload, cell.variant) == (backend, workload, variant):
                return cell
        return None


# -- the operations ----------------------------------------------------------------------


class GrpcAppender:
    """One task's appends over gRPC: one event per call to its own stream, stating the
    exact expected revision (no stream before the first)."""

    def __init__(self, client: Any) -> None:
        # kurrentdbclient is a development dependency: imported when a benchmark runs.
        from kurrentdbclient import NewEvent, StreamState

        self._new_event = NewEvent
        self._no_stream = StreamState.NO_STREAM
        self.client = client
        self.stream = new_stream_id()
        self.count = 0

    async def __call__(self) -> None:
        current = self._no_stream if self.count == 0 else self.count - 1
        await self.client.append_to_stream(
            self.stream,
            events=self._new_event(type=EVENT_TYPE, data=PAYLOAD_BYTES),
            current_version=current,
        )
        self.count += 1

    async def check(self) -> None:
        """Raise unless the stream holds exactly the appends acknowledged."""
        revision = await self.client.get_current_version(self.stream)
        expected = self._no_stream if self.count == 0 else self.count - 1
        if revision != expected:
            raise RuntimeError(
                f"stream {self.stream}: revision {revision} after {self.count} appends"
            )


class StoreAppender:
    """One task's appends in-process: one event per call, exact expected version."""

    def __init__(self, store: AsyncEventStore) -> None:
        self.store = store
        self.stream = new_stream_id()
        self.count = 0

    async def __call__(self) -> None:
        result = await self.store.append_to_stream(
            self.stream, self.count, [EventData(EVENT_TYPE, PAYLOAD)]
        )
        self.count = result.stream_version

    async def check(self) -> None:
        """Raise unless the stream holds exactly the appends acknowledged."""
        if self.count == 0:
            return
        info = await self.store.stream_info(self.stream)
        if info.stream_version != self.count:
            raise RuntimeError(
                f"stream {self.stream}: version {info.stream_version} after {self.count} appends"
            )


@dataclass
class Window:
    """A measured load and the CPU both processes used during it."""

    load: LoadResult
    server_cpu: tuple[float | None, float | None] = (None, None)
    client_cpu: tuple[float, float] = (0.0, 0.0)

    def figures(self, clients: int) -> dict[str, Any]:
        load = self.load
        return {
            "clients": clients,
            "appends": load.ops,
            "seconds": round(load.elapsed, 3),
            "appends_per_s": round(load.ops_per_s, 1),
            "p50_ms": round(load.p50_ms, 3),
            "p99_ms": round(load.p99_ms, 3),
            "server_cpu_us": cpu_per_op(*self.server_cpu, load.ops),
            "client_cpu_us": cpu_per_op(*self.client_cpu, load.ops),
            "server_cores": cores(*self.server_cpu, load.elapsed),
            "client_cores": cores(*self.client_cpu, load.elapsed),
        }


async def _measure(
    appenders: Sequence[GrpcAppender | StoreAppender],
    s: ServerSettings,
    server_pid: int | None,
    profile: Callable[[float], Any] | None = None,
) -> Window:
    if s.warmup > 0:
        await run_async_load(appenders, s.warmup)
    if profile is not None:
        await profile(s.seconds)
    server_before = process_cpu_seconds(server_pid) if server_pid is not None else None
    client_before = time.process_time()
    load = await run_async_load(appenders, s.seconds)
    client_after = time.process_time()
    server_after = process_cpu_seconds(server_pid) if server_pid is not None else None
    await asyncio.gather(*(appender.check() for appender in appenders))
    return Window(load, (server_before, server_after), (client_before, client_after))


@asynccontextmanager
async def _clients(uri: str, count: int) -> AsyncIterator[list[Any]]:
    from kurrentdbclient import AsyncKurrentDBClient

    clients = [AsyncKurrentDBClient(uri) for _ in range(count)]
    try:
        await asyncio.gather(*(client.connect() for client in clients))
        yield clients
    finally:
        for client in clients:
            await client.close()


@dataclass(frozen=True)
class Location:
    """Where a cell's store lives: a URL and, on PostgreSQL, a schema (tables created)."""

    url: str
    schema: str | None = None

    @classmethod
    def of(cls, spec: TargetSpec) -> Location:
        if spec.backend == "sqlite":
            return cls(f"sqlite:///{spec.location}")
        return cls(spec.location, spec.schema)

    @property
    def options(self) -> dict[str, Any]:
        """``AsyncEventStore`` options (the server gets the same through ``--schema``)."""
        return {} if self.schema is None else {"schema": self.schema, "auto_init": False}


# -- the run -------------------------------------------------------------------------------


class Runner:
    """Runs the plan's cells on one backend's site."""

    def __init__(self, site: Site | None, plan: ServerPlan, progress: Progress) -> None:
        self.site = site
        self._memory_stores = 0
        self.plan = plan
        self.s = plan.settings
        self.progress = progress
        self.last_server = ""
        self.profiler = (
            Profiler(plan.profile_dir, gil=plan.profile_gil)
            if plan.profile_dir is not None
            else None
        )

    @property
    def backend(self) -> str:
        return MEMORY if self.site is None else self.site.backend

    @asynccontextmanager
    async def location(self) -> AsyncIterator[Location]:
        """A fresh store location for one cell (removed afterwards)."""
        if self.site is None:
            self._memory_stores += 1
            yield Location(f"memory://evstore-server-bench-{os.getpid()}-{self._memory_stores}")
            return
        async with self.site.location("evstore") as spec:
            yield Location.of(spec)

    async def prepare(self) -> None:
        if self.site is not None:
            await self.site.prepare()

    def _cell(
        self, workload: str, variant: str, figures: dict[str, Any], profile: dict[str, Any]
    ) -> ServerCell:
        server = self.last_server if variant in (PROCESS, SHARED) else ""
        if variant == THREAD:
            server = "evstore.server.app.BackgroundServer (this process)"
        return ServerCell(
            self.backend, workload, variant, DESCRIPTIONS[variant], figures, profile, server
        )

    def _profile_hook(self, name: str, pids: dict[str, int]) -> Callable[[float], Any] | None:
        profiler = self.profiler
        if profiler is None:
            return None

        async def start(seconds: float) -> None:
            for role, pid in pids.items():
                await profiler.start(f"{self.backend}-{name}-{role}", pid, seconds)

        return start

    async def _profiles(self) -> dict[str, Any]:
        if self.profiler is None:
            return {}
        return await self.profiler.finish()

    # -- B1 ----------------------------------------------------------------------------

    async def appends(self) -> list[ServerCell]:
        cells = []
        for variant in self.plan.variants:
            self.progress(f"{self.backend} B1 {variant}, {self.s.clients} tasks")
            async with self.location() as where:
                if variant == IN_PROCESS:
                    figures, profile = await self._appends_in_process(where)
                elif variant == THREAD:
                    figures, profile = await self._appends_thread(where)
                else:
                    figures, profile = await self._appends_process(where, variant == SHARED)
            cells.append(self._cell("B1", variant, figures, profile))
        return cells

    async def _appends_in_process(self, where: Location) -> tuple[dict[str, Any], dict[str, Any]]:
        store = await AsyncEventStore(where.url, **where.options).open()
        try:
            appenders = [StoreAppender(store) for _ in range(self.s.clients)]
            hook = self._profile_hook("B1-in-process", {"process": os.getpid()})
            window = await _measure(appenders, self.s, None, hook)
        finally:
            await store.close()
        return window.figures(self.s.clients), await self._profiles()

    async def _appends_process(
        self, where: Location, shared: bool
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        async with (
            server_process(where.url, where.schema, server_src=self.plan.server_src) as server,
            _clients(server.uri, 1 if shared else self.s.clients) as clients,
        ):
            self.last_server = shlex.join(server.command)
            appenders = [GrpcAppender(clients[0 if shared else n]) for n in range(self.s.clients)]
            name = "B1-process-shared" if shared else "B1-process"
            hook = self._profile_hook(name, {"server": server.pid, "client": os.getpid()})
            window = await _measure(appenders, self.s, server.pid, hook)
        return window.figures(self.s.clients), await self._profiles()

    async def _appends_thread(self, where: Location) -> tuple[dict[str, Any], dict[str, Any]]:
        async with _background_server(where) as uri, _clients(uri, self.s.clients) as clients:
            appenders = [GrpcAppender(client) for client in clients]
            hook = self._profile_hook("B1-thread", {"process": os.getpid()})
            window = await _measure(appenders, self.s, None, hook)
        return window.figures(self.s.clients), await self._profiles()

    # -- B2 ----------------------------------------------------------------------------

    async def reads(self) -> list[ServerCell]:
        s = self.s
        per_stream = min(PER_STREAM, s.read_events)
        streams = s.read_events // per_stream
        cells = []
        async with self.location() as where:
            self.progress(f"{self.backend} B2 storing {s.read_events:,} events")
            filler = EvstoreTarget(where.url, **where.options)
            await filler.open()
            try:
                await filler.fill([new_stream_id() for _ in range(streams)], per_stream)
            finally:
                await filler.close()
            await self.prepare()
            for variant in self.plan.variants:
                if variant == SHARED:
                    continue  # one reader: a shared client is the same thing
                self.progress(f"{self.backend} B2 {variant}, {s.read_events:,} events")
                if variant == IN_PROCESS:
                    figures, profile = await self._read_in_process(where)
                elif variant == THREAD:
                    async with _background_server(where) as uri:
                        figures, profile = await self._read_grpc(uri, None, "B2-thread")
                else:
                    async with server_process(
                        where.url, where.schema, server_src=self.plan.server_src
                    ) as server:
                        self.last_server = shlex.join(server.command)
                        figures, profile = await self._read_grpc(
                            server.uri, server.pid, "B2-process"
                        )
                cells.append(self._cell("B2", variant, figures, profile))
        return cells

    async def _passes(
        self,
        read: Callable[[], Any],
        server_pid: int | None,
        name: str,
        pids: dict[str, int],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """One untimed pass, ``read_passes`` timed ones (the fastest counts), then, when
        profiling, one more under the profiler (not counted)."""
        expected = self.s.read_events
        await read()
        results: list[tuple[float, float | None, float]] = []
        for _ in range(self.s.read_passes):
            server_before = process_cpu_seconds(server_pid) if server_pid else None
            client_before = time.process_time()
            began = time.perf_counter()
            count = await read()
            elapsed = time.perf_counter() - began
            client_cpu = time.process_time() - client_before
            server_after = process_cpu_seconds(server_pid) if server_pid else None
            if count != expected:
                raise RuntimeError(f"{name} read {count} events of {expected}")
            server_cpu = (
                None
                if server_before is None or server_after is None
                else server_after - server_before
            )
            results.append((elapsed, server_cpu, client_cpu))
        best = min(results, key=lambda result: result[0])
        elapsed, server_cpu, client_cpu = best
        figures: dict[str, Any] = {
            "events": expected,
            "seconds": round(elapsed, 3),
            "events_per_s": round(expected / elapsed, 1),
            "passes": [round(result[0], 3) for result in results],
            "server_cpu_us": None if server_cpu is None else round(server_cpu / expected * 1e6, 2),
            "client_cpu_us": round(client_cpu / expected * 1e6, 2),
        }
        hook = self._profile_hook(name, pids)
        if hook is not None:
            await hook(elapsed)
            await read()
        return figures, await self._profiles()

    async def _read_in_process(self, where: Location) -> tuple[dict[str, Any], dict[str, Any]]:
        store = await AsyncEventStore(where.url, **where.options).open()
        batch_size = self.s.read_batch_size

        async def read() -> int:
            count = 0
            async for _event in store.stream_all_forward(batch_size=batch_size):
                count += 1
            return count

        try:
            return await self._passes(read, None, "B2-in-process", {"process": os.getpid()})
        finally:
            await store.close()

    async def _read_grpc(
        self, uri: str, server_pid: int | None, name: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        async with _clients(uri, 1) as clients:
            client = clients[0]

            async def read() -> int:
                count = 0
                # No filter at all: kurrentdbclient's default excludes system events with
                # a regex the server would then evaluate on every event.
                events = await client.read_all(filter_exclude=(), filter_include=())
                async for _event in events:
                    count += 1
                return count

            pids = (
                {"client": os.getpid()}
                if server_pid is None
                else {
                    "server": server_pid,
                    "client": os.getpid(),
                }
            )
            return await self._passes(read, server_pid, name, pids)


@asynccontextmanager
async def _background_server(where: Location) -> AsyncIterator[str]:
    """A :class:`BackgroundServer` on ``where`` in this process; its connection string."""
    from evstore.server.app import BackgroundServer

    server = BackgroundServer(where.url, port=0, grace=5.0, store_options=where.options)
    await asyncio.to_thread(server.start)
    try:
        yield f"kurrentdb://127.0.0.1:{server.port}?tls=false"
    finally:
        await asyncio.to_thread(server.stop)


def _stderr(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


async def _run_site(
    site: Site | None, plan: ServerPlan, progress: Progress, run: ServerRun
) -> None:
    runner = Runner(site, plan, progress)
    if "B1" in plan.workloads:
        run.cells += await runner.appends()
    if "B2" in plan.workloads:
        if site is None:
            # A memory:// store lives in one process: the server's cannot be filled from here.
            run.notes.append("memory: B2 not measured (each process has its own memory store)")
        else:
            run.cells += await runner.reads()


async def _run_postgres(plan: ServerPlan, progress: Progress, run: ServerRun) -> None:
    async with scratch_database(plan.admin_url) as url:
        site = await PostgresSite.connect(url)
        try:
            await check_durable(site, plan.allow_non_durable, run.meta, run.notes, progress)
            await _run_site(site, plan, progress, run)
            if not site.can_checkpoint:
                run.notes.append("no CHECKPOINT privilege: cells ran without a checkpoint")
        finally:
            await site.close()


async def run_server_benchmarks(plan: ServerPlan, progress: Progress = _stderr) -> ServerRun:
    """Run ``plan``; every cell in one :class:`ServerRun`."""
    run = ServerRun(meta={"machine": describe_machine(plan.sqlite_dir or ".")})
    run.meta["machine"]["versions"].update(
        {name: version_of(name) for name in ("grpcio", "protobuf", "kurrentdbclient")}
    )
    run.meta["settings"] = asdict(plan.settings)
    run.meta["workloads"] = list(plan.workloads)
    run.meta["variants"] = list(plan.variants)
    run.notes.append(
        "gRPC appends are kurrentdbclient's append_to_stream, which 1.3.5 sends as one "
        "Streams.BatchAppend call (one batch, is_final) per append"
    )
    if plan.profile_dir is not None:
        run.notes.append(
            "py-spy sampled the processes during the measured windows (--profile): the "
            "figures include its overhead, do not quote them"
        )
    if plan.server_src is not None:
        run.meta["server_src"] = plan.server_src
        run.notes.append(f"the server process ran the evstore found first in {plan.server_src}")
    for backend in plan.backends:
        if backend == "postgres":
            await _run_postgres(plan, progress, run)
        elif backend == MEMORY:
            await _run_site(None, plan, progress, run)
        else:
            sqlite = SqliteSite(plan.sqlite_dir)
            try:
                info = run.meta["sqlite"] = sqlite.settings()
                progress(f"SQLite {info['sqlite_version']} in {info['directory']}")
                await _run_site(sqlite, plan, progress, run)
            finally:
                await sqlite.close()
    if hasattr(os, "getloadavg"):
        run.meta["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return run


# -- tables -------------------------------------------------------------------------------


def _number(value: float | None, digits: int = 0) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _ratio(value: float, reference: ServerCell | None, key: str) -> str:
    if reference is None or not reference.figures.get(key):
        return ""
    return f"{value / reference.figures[key]:.0%}"


def _append_table(run: ServerRun, backend: str) -> Table | None:
    cells = [c for c in run.cells if (c.backend, c.workload) == (backend, "B1")]
    if not cells:
        return None
    reference = run.find(backend, "B1", IN_PROCESS)
    rows = []
    for cell in cells:
        f = cell.figures
        rows.append(
            [
                cell.variant,
                str(f["clients"]),
                _number(f["appends_per_s"]),
                _number(f["p50_ms"], 2),
                _number(f["p99_ms"], 2),
                _number(f.get("server_cpu_us")),
                _number(f.get("client_cpu_us")),
                ""
                if cell.variant == IN_PROCESS
                else _ratio(f["appends_per_s"], reference, "appends_per_s"),
            ]
        )
    title = (
        f"B1 appends, 1 event per call, each task its own stream ({BACKEND_NAMES[backend]}); "
        "CPU = microseconds per append (thread and in-process: the one process, under client)"
        "; vs in-process = appends/s / in-process appends/s"
    )
    headers = ["variant", "tasks", "appends/s", "p50 ms", "p99 ms"]
    headers += ["server CPU us", "client CPU us", "vs in-process"]
    return Table(title, headers, rows)


def _read_table(run: ServerRun, backend: str) -> Table | None:
    cells = [c for c in run.cells if (c.backend, c.workload) == (backend, "B2")]
    if not cells:
        return None
    reference = run.find(backend, "B2", IN_PROCESS)
    rows = []
    for cell in cells:
        f = cell.figures
        rows.append(
            [
                cell.variant,
                f"{int(f['events']):,}",
                f"{f['seconds']:.3f}",
                _number(f["events_per_s"]),
                _number(f.get("server_cpu_us"), 1),
                _number(f.get("client_cpu_us"), 1),
                ""
                if cell.variant == IN_PROCESS
                else _ratio(f["events_per_s"], reference, "events_per_s"),
            ]
        )
    settings = run.meta.get("settings", {})
    title = (
        f"B2 $all read from the origin, no filter ({BACKEND_NAMES[backend]}): gRPC read_all vs "
        f"stream_all_forward(batch_size={settings.get('read_batch_size')}); fastest of "
        f"{settings.get('read_passes')} timed passes; CPU = microseconds per event"
    )
    headers = ["variant", "events", "s", "events/s", "server CPU us", "client CPU us"]
    return Table(title, [*headers, "vs in-process"], rows)


def target_rows(run: ServerRun) -> list[list[str]]:
    """The issue's B1 targets, per backend, on the headline variant: [target, measured,
    status] rows."""
    rows: list[list[str]] = []
    for backend in DEFAULT_BACKENDS:  # the targets are about durable stores
        cell = run.find(backend, "B1", PROCESS)
        if cell is None:
            continue
        rate = cell.figures["appends_per_s"]
        name = BACKEND_NAMES[backend]
        rows.append(
            [
                f"{name} B1: >= {TARGET_APPENDS:,.0f} appends/s over gRPC",
                f"{rate:,.0f}/s",
                "met" if rate >= TARGET_APPENDS else "MISSED",
            ]
        )
        reference = run.find(backend, "B1", IN_PROCESS)
        if reference is not None and reference.figures["appends_per_s"] > 0:
            ratio = rate / reference.figures["appends_per_s"]
            rows.append(
                [
                    f"{name} B1: >= {TARGET_RATIO:.0%} of the in-process rate",
                    f"{ratio:.0%} ({rate:,.0f} vs {reference.figures['appends_per_s']:,.0f}/s)",
                    "met" if ratio >= TARGET_RATIO else "MISSED",
                ]
            )
    return rows


def tables(run: ServerRun) -> list[Table]:
    """Every table of a run: per backend B1 then B2, then the targets."""
    found: list[Table | None] = []
    for backend in BACKENDS:
        found += [_append_table(run, backend), _read_table(run, backend)]
    targets = target_rows(run)
    if targets:
        title = "Targets (headline: server process, one client per task; same run)"
        found.append(Table(title, ["target", "measured", "status"], targets))
    return [table for table in found if table is not None]


_INNER_FRAMES = tuple(
    f"({package}/{module}.py)"
    for package, modules in {
        "server": ("streams", "dialect", "convert", "app", "follow", "filters", "persistent"),
        "evstore": ("_store",),
        "sqlite": ("storage", "writer", "_reads", "_writes"),
        "postgres": ("storage", "writer"),
        "aio": ("_call", "_channel", "_server"),
        "kurrentdbclient": ("streams", "asyncio_client", "common"),
    }.items()
    for module in modules
)


def profile_lines(run: ServerRun, top: int = 8) -> list[str]:
    """The profiles of a run (``--profile``) in short: per process, its busiest threads
    and the functions with the most samples of their own (self) and in all (inclusive)."""
    lines: list[str] = []
    for cell in run.cells:
        for name, summary in cell.profile.items():
            lines.append(f"profile {name}: {summary['samples']:,} samples, {summary['file']}")
            threads = ", ".join(f"{thread} {share:.0%}" for thread, share in summary["threads"])
            lines.append(f"  threads: {threads}")
            lines.append("  self:")
            lines += [f"    {share:6.1%}  {where}" for where, share in summary["self"][:top]]
            # Every sample passes through the same outer frames (runpy, click, the event
            # loop): show the frames of the code that does the work.
            inner = [(w, x) for w, x in summary["inclusive"] if w.endswith(_INNER_FRAMES)]
            lines.append("  inclusive (evstore, grpc.aio, kurrentdbclient):")
            lines += [f"    {share:6.1%}  {where}" for where, share in inner[:top]]
    return lines


def print_run(run: ServerRun, *, markdown: bool) -> None:
    """Every table, note and profile summary of ``run`` on stdout."""
    for table in tables(run):
        print(render(table, markdown=markdown))
    for note in run.notes:
        print(f"note: {note}")
    for line in profile_lines(run):
        print(line)


# -- command line -------------------------------------------------------------------------


def _choose(values: Sequence[str], known: dict[str, str], what: str) -> tuple[str, ...]:
    chosen = names(values)
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise ValueError(f"unknown {what} {', '.join(unknown)}; known: {', '.join(known)}")
    order = list(known)
    return tuple(known[name] for name in sorted(set(chosen), key=order.index))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Server benchmarks: evstore serve with kurrentdbclient (B1 appends, B2 "
        "$all read) beside the same work in-process, in one run."
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
        metavar="sqlite,postgres,memory",
        help="backends to measure (default sqlite,postgres; memory: the gRPC cost with the "
        "cheapest store, B1 only)",
    )
    parser.add_argument("--only", action="append", default=[], metavar="B1,B2")
    parser.add_argument(
        "--variants",
        action="append",
        default=[],
        metavar="in-process,process,shared,thread",
        help="where the server runs (default all; in-process is the reference)",
    )
    parser.add_argument("--quick", action="store_true", help="a few seconds per cell")
    parser.add_argument("--seconds", type=float, help="B1 measured seconds (default 10)")
    parser.add_argument("--warmup", type=float, help="B1 warm-up seconds (default 2)")
    parser.add_argument("--clients", type=int, help="B1 concurrent tasks (default 50)")
    parser.add_argument("--read-events", type=int, help="B2 events (default 100,000)")
    parser.add_argument(
        "--read-passes", type=int, help="B2 timed passes, the fastest counts (default 3)"
    )
    parser.add_argument("--sqlite-dir", help="where the scratch SQLite files go (default $TMPDIR)")
    parser.add_argument(
        "--server-src",
        help="a directory put first on the server process's PYTHONPATH (A/B a patched copy)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy records of the server and client processes during each measured "
        "window, into DIR (summaries go into the results)",
    )
    parser.add_argument(
        "--profile-gil", action="store_true", help="with --profile: only samples holding the GIL"
    )
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


def plan_from_args(args: argparse.Namespace) -> ServerPlan:
    """The plan the command line asks for (ValueError on unknown names or bad sizes)."""
    backends = _choose(args.backends, {b: b for b in BACKENDS}, "backend") or DEFAULT_BACKENDS
    workloads = _choose(args.only, {w.lower(): w for w in WORKLOADS}, "workload") or WORKLOADS
    variants = _choose(args.variants, VARIANT_OPTIONS, "variant") or VARIANTS
    settings = ServerSettings.quick() if args.quick else ServerSettings()
    overrides = {
        "seconds": args.seconds,
        "warmup": args.warmup,
        "clients": args.clients,
        "read_events": args.read_events,
        "read_passes": args.read_passes,
    }
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    if settings.seconds <= 0 or settings.warmup < 0:
        raise ValueError("--seconds must be positive and --warmup not negative")
    if settings.clients < 1 or settings.read_passes < 1:
        raise ValueError("--clients and --read-passes must be at least 1")
    events = settings.read_events
    if events <= 0 or (events > PER_STREAM and events % PER_STREAM):
        raise ValueError(f"--read-events must be at most {PER_STREAM} or a multiple of it")
    if args.profile_gil and args.profile is None:
        raise ValueError("--profile-gil needs --profile DIR")
    return ServerPlan(
        backends=backends,
        workloads=workloads,
        variants=variants,
        settings=settings,
        admin_url=args.admin_url,
        sqlite_dir=args.sqlite_dir,
        allow_non_durable=args.allow_non_durable,
        server_src=args.server_src,
        profile_dir=args.profile,
        profile_gil=args.profile_gil,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server benchmarks (or print a saved run); the exit status."""
    args = _parser().parse_args(argv)
    if args.from_json is not None:
        print_run(
            ServerRun.from_json(json.loads(args.from_json.read_text())), markdown=args.markdown
        )
        return 0
    try:
        plan = plan_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        run = asyncio.run(run_server_benchmarks(plan))
    except NotDurableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    arguments = sys.argv[1:] if argv is None else list(argv)
    run.meta["command"] = shlex.join(["benchmarks/server.py", *arguments])
    print_run(run, markdown=args.markdown)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(run.to_json(), indent=1) + "\n")
        print(f"results written to {args.json}", file=sys.stderr)
    return 0
