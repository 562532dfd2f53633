"""Streams many events to a slow subscriber and reports RSS growth (run by a test).

    python _rss_worker.py URL EVENTS

Appends EVENTS events, then consumes them all through a persistent subscription that
acks one batch at a time (so the whole backlog waits in the database, never in memory),
and prints one JSON line: events delivered, RSS before subscribing and the peak during
delivery, in bytes.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys

from evstore import ANY_VERSION, AsyncEventStore, EventData


def rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def main(url: str, total: int) -> None:
    async with AsyncEventStore(url) as store:
        payload = {"text": "x" * 80}
        for start in range(0, total, 5000):
            size = min(5000, total - start)
            await store.append_to_stream(
                f"s-{start // 100_000}",
                ANY_VERSION,
                [EventData("Bulk", payload) for _ in range(size)],
            )
        gc.collect()
        before = peak = rss()
        delivered = 0
        async with store.subscribe_to_all_streams("rss", buffer_size=500) as sub:
            async for batch in sub:
                delivered += len(batch)
                await asyncio.sleep(0.001)  # a slow consumer: the backlog waits in the database
                await sub.ack(batch)
                if delivered % 50_000 < len(batch):
                    peak = max(peak, rss())
                if delivered >= total:
                    break
        peak = max(peak, rss())
    print(json.dumps({"delivered": delivered, "before": before, "peak": peak}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
