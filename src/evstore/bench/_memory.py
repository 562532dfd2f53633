"""W5's memory bound: RSS growth of a process streaming all of ``$all`` with evstore.

The reading runs in a fresh (spawned) process so its resident set holds nothing but the
store and the stream. RSS comes from ``/proc/self/statm`` (sampled every 10,000 events),
or from ``getrusage``'s peak where there is no ``/proc``.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from evstore.bench.systems import TargetSpec, make_target
from evstore.bench.systems.evstore_target import EvstoreTarget

__all__ = ["measure_streaming_memory", "rss_bytes"]

MB = 1024 * 1024
SAMPLE_EVERY = 10_000


def rss_bytes() -> int:
    """The current resident set size (the peak so far where ``/proc`` is missing)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


async def _stream(spec: TargetSpec, page: int) -> dict[str, float]:
    target = make_target(spec)
    assert isinstance(target, EvstoreTarget)
    await target.open()
    try:
        store = target.store
        await store.read_all_streams_forward(0, 10)  # connections and code paths warm
        gc.collect()
        start = peak = rss_bytes()
        count = 0
        began = time.perf_counter()
        async for _event in store.stream_all_forward(batch_size=page):
            count += 1
            if count % SAMPLE_EVERY == 0:
                peak = max(peak, rss_bytes())
        elapsed = time.perf_counter() - began
        peak = max(peak, rss_bytes())
    finally:
        await target.close()
    return {
        "events": count,
        "seconds": round(elapsed, 3),
        "rss_start_mb": round(start / MB, 1),
        "rss_peak_mb": round(peak / MB, 1),
        "rss_growth_mb": round((peak - start) / MB, 1),
    }


def _child(spec: TargetSpec, page: int) -> dict[str, float]:
    return asyncio.run(_stream(spec, page))


async def measure_streaming_memory(spec: TargetSpec, page: int) -> dict[str, float]:
    """Stream all of ``spec``'s ``$all`` in a fresh process; its RSS figures and speed."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return await asyncio.get_running_loop().run_in_executor(pool, _child, spec, page)
