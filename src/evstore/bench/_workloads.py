"""The workloads W1 to W5 (W6 is read from W2's 50-writer cell), one function each.

Every function takes a :class:`~evstore.bench._sites.Site` and the systems to compare and
returns :class:`~evstore.bench._results.Cell` results. Write workloads interleave the
systems at each concurrency level, so a drift in the machine's state (another job, the
disk) touches every system alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from evstore.bench._data import new_stream_id
from evstore.bench._memory import measure_streaming_memory
from evstore.bench._processes import run_processes
from evstore.bench._results import Cell
from evstore.bench._sites import Site
from evstore.bench._timing import LoadResult, run_async_load, run_thread_load
from evstore.bench.systems import AsyncTarget, Target, ThreadTarget, make_target

__all__ = [
    "WORKLOADS",
    "Settings",
    "appends",
    "multi_process",
    "scan",
    "stream_reads",
]

WORKLOADS = {
    "W1": "append 100 events per operation",
    "W2": "append 1 event per operation",
    "W3": "append 1 event per operation from several processes",
    "W4": "read a 100-event stream",
    "W5": "read $all from the origin",
    "W6": "append latency under W2 with 50 writers",
}

Progress = Callable[[str], None]
SCAN_PASSES = 2


@dataclass(frozen=True)
class Settings:
    """How long and how wide each workload runs."""

    seconds: float = 4.0
    warmup: float = 1.0
    writers: tuple[int, ...] = (1, 10, 50)
    readers: tuple[int, ...] = (1, 10, 50)
    processes: int = 8
    process_writers: int = 4
    stream_length: int = 100
    scan_events: int = 100_000
    memory_events: int = 1_000_000
    page: int = 1000

    @classmethod
    def quick(cls) -> Settings:
        """A few seconds per cell, fewer concurrency levels, smaller logs."""
        return cls(
            seconds=2.0,
            warmup=0.5,
            writers=(1, 50),
            readers=(10,),
            scan_events=20_000,
            memory_events=100_000,
        )

    def with_seconds(self, seconds: float) -> Settings:
        return replace(self, seconds=seconds)


def _label(system: str, reading: bool) -> str:
    # Reads of the raw table do not depend on how it was written.
    return "raw asyncpg" if reading and system == "raw unnest" else system


async def _measure_appends(target: Target, writers: int, size: int, s: Settings) -> LoadResult:
    if isinstance(target, AsyncTarget):
        operations = [target.appender(size) for _ in range(writers)]
        if s.warmup > 0:
            await run_async_load(operations, s.warmup)
        return await run_async_load(operations, s.seconds)
    assert isinstance(target, ThreadTarget)
    blocking = [target.appender(size) for _ in range(writers)]
    if s.warmup > 0:
        run_thread_load(blocking, s.warmup)
    return run_thread_load(blocking, s.seconds)


async def _measure_reads(target: Target, streams: Sequence[str], s: Settings) -> LoadResult:
    if isinstance(target, AsyncTarget):
        operations = [target.reader(stream) for stream in streams]
        if s.warmup > 0:
            await run_async_load(operations, s.warmup)
        return await run_async_load(operations, s.seconds)
    assert isinstance(target, ThreadTarget)
    blocking = [target.reader(stream) for stream in streams]
    if s.warmup > 0:
        run_thread_load(blocking, s.warmup)
    return run_thread_load(blocking, s.seconds)


async def appends(
    site: Site,
    systems: Sequence[str],
    workload: str,
    size: int,
    writers: Sequence[int],
    s: Settings,
    progress: Progress,
) -> list[Cell]:
    """W1 (``size`` 100) and W2 (``size`` 1): ``n`` writers, each appending to its own stream."""
    cells = []
    for count in writers:
        for system in systems:
            progress(f"{site.backend} {workload} {system} x{count}")
            async with site.target(system, pool_size=count) as target:
                load = await _measure_appends(target, count, size, s)
                cells.append(
                    Cell.from_load(
                        load,
                        backend=site.backend,
                        workload=workload,
                        system=system,
                        role=target.role,
                        concurrency=count,
                        events_per_op=size,
                    )
                )
    return cells


async def multi_process(
    site: Site, systems: Sequence[str], s: Settings, progress: Progress
) -> list[Cell]:
    """W3: ``s.processes`` processes with ``s.process_writers`` single-event writers each.

    Pools are sized to the writers of one process (evstore and raw: ``pool_size`` 4; a
    larger pool would only add idle connections, and 8 processes x 10 would not fit in
    ``max_connections`` 100); eventsourcing keeps its default pool.
    """
    cells = []
    total = s.processes * s.process_writers
    for system in systems:
        progress(f"{site.backend} W3 {system} {s.processes}x{s.process_writers}")
        pool = 0 if system == "eventsourcing" else s.process_writers
        async with site.location(system, pool_size=pool) as spec:
            load = await run_processes(spec, s.processes, s.process_writers, s.warmup, s.seconds)
        role = (
            "subject" if system == "evstore" else "peer" if system == "eventsourcing" else "limit"
        )
        cells.append(
            Cell.from_load(
                load,
                backend=site.backend,
                workload="W3",
                system=system,
                role=role,
                concurrency=total,
                events_per_op=1,
            )
        )
    return cells


async def stream_reads(
    site: Site, systems: Sequence[str], s: Settings, progress: Progress
) -> list[Cell]:
    """W4: ``n`` concurrent readers, each reading a whole ``s.stream_length``-event stream."""
    cells = []
    for system in systems:
        progress(f"{site.backend} W4 {system}")
        async with site.target(system, pool_size=max(s.readers)) as target:
            streams = [new_stream_id() for _ in range(max(s.readers))]
            await target.fill(streams, s.stream_length)
            await site.prepare()
            for count in s.readers:
                load = await _measure_reads(target, streams[:count], s)
                cells.append(
                    Cell.from_load(
                        load,
                        backend=site.backend,
                        workload="W4",
                        system=_label(system, reading=True),
                        role=target.role,
                        concurrency=count,
                        events_per_op=s.stream_length,
                    )
                )
    return cells


async def scan(
    site: Site, systems: Sequence[str], s: Settings, progress: Progress, *, memory: bool
) -> list[Cell]:
    """W5: read ``s.scan_events`` events of ``$all`` from the origin, ``s.page`` per query
    (one untimed pass, then the best of two); with ``memory``, also evstore's RSS growth
    while streaming ``s.memory_events`` events in a fresh process."""
    cells = []
    per_stream = 1000
    for system in systems:
        progress(f"{site.backend} W5 {system} {s.scan_events:,} events")
        async with site.target(system) as target:
            await target.fill(
                [new_stream_id() for _ in range(s.scan_events // per_stream)], per_stream
            )
            await site.prepare()
            # The first pass after writing sets hint bits (PostgreSQL) and fills caches:
            # untimed. Then the faster of two timed passes, which spares the figure a
            # hiccup of the machine (every system gets the same treatment).
            await target.scan_all(s.page)
            elapsed = float("inf")
            for _pass in range(SCAN_PASSES):
                began = time.perf_counter()
                count = await target.scan_all(s.page)
                elapsed = min(elapsed, time.perf_counter() - began)
        if count != s.scan_events:
            raise RuntimeError(f"{system} read {count} events of {s.scan_events}")
        cells.append(
            Cell(
                backend=site.backend,
                workload="W5",
                system=_label(system, reading=True),
                role=target.role,
                concurrency=1,
                events_per_op=s.page,
                ops=count // s.page,
                seconds=round(elapsed, 3),
                ops_per_s=round(count / s.page / elapsed, 1),
                events_per_s=round(count / elapsed, 1),
            )
        )
    if memory and "evstore" in systems:
        progress(f"{site.backend} W5 evstore memory, {s.memory_events:,} events")
        async with site.location("evstore") as spec:
            filler = make_target(spec)
            await filler.open()
            try:
                streams = [new_stream_id() for _ in range(s.memory_events // per_stream)]
                await filler.fill(streams, per_stream)
            finally:
                await filler.close()
            await site.prepare()
            figures = await measure_streaming_memory(spec, s.page)
        seconds = figures["seconds"]
        cells.append(
            Cell(
                backend=site.backend,
                workload="W5-memory",
                system="evstore",
                role="subject",
                concurrency=1,
                events_per_op=s.page,
                ops=int(figures["events"]) // s.page,
                seconds=seconds,
                ops_per_s=round(figures["events"] / s.page / seconds, 1),
                events_per_s=round(figures["events"] / seconds, 1),
                extra=figures,
            )
        )
    return cells
