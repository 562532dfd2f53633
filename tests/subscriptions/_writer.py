"""A writer process for the subscription tests (run by them, not collected).

    python _writer.py URL INDEX SECONDS OUT.json

Appends single events and batches of 2-10 to its own streams for SECONDS and writes the
ids of every acknowledged event to OUT.json.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time

from evstore import ANY_VERSION, AsyncEventStore, EventData


async def _task(store: AsyncEventStore, index: int, task: int, deadline: float) -> list[str]:
    rng = random.Random(index * 100 + task)
    acked: list[str] = []
    while time.monotonic() < deadline:
        size = 1 if rng.random() < 0.6 else rng.randint(2, 10)
        events = [EventData("Written", {"w": index, "t": task}) for _ in range(size)]
        await store.append_to_stream(f"writer-{index}-{task % 3}", ANY_VERSION, events)
        acked += [str(e.event_id) for e in events]
    return acked


async def main(url: str, index: int, seconds: float, path: str) -> None:
    async with AsyncEventStore(url) as store:
        deadline = time.monotonic() + seconds
        done = await asyncio.gather(*(_task(store, index, t, deadline) for t in range(4)))
    with open(path, "w") as file:
        json.dump([event_id for ids in done for event_id in ids], file)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]))
