"""W3: appenders spread over several processes, all measured over the same window.

Each child process opens its own target on the shared location (its own pool or
factory, as separate application processes would), builds its writers, reports ready, and
then runs warm-up and measurement between wall-clock instants the parent hands to every
child, so the processes load the database at the same time.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from multiprocessing.connection import Connection
from typing import Any

from evstore.bench._timing import LoadResult, run_async_load, run_thread_load
from evstore.bench.systems import AsyncTarget, TargetSpec, ThreadTarget, make_target

__all__ = ["run_processes"]

START_DELAY = 0.3
"""Seconds between the last child reporting ready and the common start."""


async def _child_main(
    conn: Connection, spec: TargetSpec, writers: int, warmup: float, seconds: float
) -> None:
    target = make_target(spec)
    await target.open()
    try:
        conn.send(("ready", None))
        start_wall: float = conn.recv()
        begin = time.perf_counter() + (start_wall - time.time())
        warm_until, end = begin + warmup, begin + warmup + seconds
        await asyncio.sleep(max(0.0, begin - time.perf_counter()))
        if isinstance(target, AsyncTarget):
            operations = [target.appender(1) for _ in range(writers)]
            await run_async_load(operations, 0, until=warm_until)
            result = await run_async_load(operations, 0, until=end)
        else:
            assert isinstance(target, ThreadTarget)
            blocking = [target.appender(1) for _ in range(writers)]
            run_thread_load(blocking, 0, until=warm_until)
            result = run_thread_load(blocking, 0, until=end)
        conn.send(("done", (result.ops, result.elapsed, result.latencies)))
    finally:
        await target.close()


def _child(conn: Connection, spec: TargetSpec, writers: int, warmup: float, seconds: float) -> None:
    try:
        asyncio.run(_child_main(conn, spec, writers, warmup, seconds))
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        raise


def _receive(conn: Connection, system: str, expected: str) -> Any:
    status, value = conn.recv()
    if status != expected:
        raise RuntimeError(f"a W3 child process of {system} failed: {value}")
    return value


async def run_processes(
    spec: TargetSpec, processes: int, writers: int, warmup: float, seconds: float
) -> LoadResult:
    """``processes`` children with ``writers`` single-event appenders each, on ``spec``."""
    context = multiprocessing.get_context("spawn")
    pipes: list[Connection] = []
    children = []
    for _ in range(processes):
        parent_end, child_end = context.Pipe()
        child = context.Process(
            target=_child, args=(child_end, spec, writers, warmup, seconds), daemon=True
        )
        child.start()
        pipes.append(parent_end)
        children.append(child)
    finished = False
    try:
        for pipe in pipes:
            await asyncio.to_thread(_receive, pipe, spec.system, "ready")
        start = time.time() + START_DELAY
        for pipe in pipes:
            pipe.send(start)
        parts = []
        for pipe in pipes:
            ops, elapsed, latencies = await asyncio.to_thread(_receive, pipe, spec.system, "done")
            parts.append(LoadResult(ops, elapsed, latencies))
        finished = True
    finally:
        for child in children:
            # After a failure the others would wait for a start that never comes.
            child.join(timeout=30 if finished else 0)
            if child.is_alive():
                child.terminate()
    return LoadResult.merge(parts, max(part.elapsed for part in parts))
