"""Timing helpers shared by every workload: percentiles and the two load drivers.

A *load* runs ``len(operations)`` independent workers, each calling its own operation in a
loop until a deadline, and records one latency per completed operation. Asyncio systems
(evstore, raw asyncpg) run their workers as tasks on the running loop; blocking systems
(eventsourcing, raw sqlite3) as threads, which is how they are meant to be used.

An operation started before the deadline is allowed to finish and is counted; the elapsed
time runs until the last one finished, so ``ops / elapsed`` is never flattered by a cut-off.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "AsyncOperation",
    "LoadResult",
    "SyncOperation",
    "percentile",
    "run_async_load",
    "run_thread_load",
]

AsyncOperation = Callable[[], Awaitable[object]]
SyncOperation = Callable[[], object]


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]


@dataclass(frozen=True)
class LoadResult:
    """What one measured load produced: completed operations, seconds, latencies (s)."""

    ops: int
    elapsed: float
    latencies: list[float]

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 0.50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 0.99) * 1000

    @classmethod
    def merge(cls, parts: Sequence[LoadResult], elapsed: float) -> LoadResult:
        """Results of several processes measured over the same window."""
        latencies = [value for part in parts for value in part.latencies]
        return cls(sum(part.ops for part in parts), elapsed, latencies)


async def run_async_load(
    operations: Sequence[AsyncOperation], seconds: float, *, until: float | None = None
) -> LoadResult:
    """Run each operation in its own task, repeatedly, for ``seconds`` (or until ``until``,
    a ``time.perf_counter`` value)."""
    started = time.perf_counter()
    deadline = until if until is not None else started + seconds
    latencies: list[float] = []

    async def worker(operation: AsyncOperation) -> None:
        clock = time.perf_counter
        while clock() < deadline:
            began = clock()
            await operation()
            latencies.append(clock() - began)

    await asyncio.gather(*(worker(operation) for operation in operations))
    return LoadResult(len(latencies), time.perf_counter() - started, latencies)


def run_thread_load(
    operations: Sequence[SyncOperation], seconds: float, *, until: float | None = None
) -> LoadResult:
    """Run each operation in its own thread, repeatedly, for ``seconds`` (or until
    ``until``). The first exception of any thread is re-raised after all have stopped."""
    started = time.perf_counter()
    deadline = until if until is not None else started + seconds
    per_thread: list[list[float]] = [[] for _ in operations]
    failures: list[BaseException] = []

    def worker(operation: SyncOperation, latencies: list[float]) -> None:
        clock = time.perf_counter
        try:
            while clock() < deadline:
                began = clock()
                operation()
                latencies.append(clock() - began)
        except BaseException as exc:  # reported by the caller, after the join
            failures.append(exc)

    threads = [
        threading.Thread(target=worker, args=(operation, latencies), daemon=True)
        for operation, latencies in zip(operations, per_thread, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    latencies = [value for part in per_thread for value in part]
    return LoadResult(len(latencies), time.perf_counter() - started, latencies)
