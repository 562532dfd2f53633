"""One writer process of the multi-process proof (run by test_proof.py, not collected).

    python _proof_worker.py URL WORKER_INDEX TASKS SECONDS OUT.json

Runs TASKS asyncio tasks for SECONDS, each appending single events or batches of 1-20 to
its own stream (ANY_VERSION) or to shared streams with an integer expectation (sometimes
wrong on purpose, often lost to a concurrent writer), and now and then an append that
repeats a stored event id. Writes what was acknowledged and what failed to OUT.json.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from typing import Any

from evstore import (
    ANY_VERSION,
    AsyncEventStore,
    DuplicateEventError,
    EventData,
    StreamNotFoundError,
    WrongExpectedVersionError,
)

SHARED_STREAMS = 4


async def _writer(
    store: AsyncEventStore, worker: int, task: int, deadline: float, out: dict[str, Any]
) -> None:
    rng = random.Random(worker * 1000 + task)
    own = f"own-{worker}-{task}"
    stored: list[str] = []
    while time.monotonic() < deadline:
        size = 1 if rng.random() < 0.5 else rng.randint(1, 20)
        events = [EventData("Proof", {"w": worker, "t": task, "i": i}) for i in range(size)]
        expected: Any
        if rng.random() < 0.5:
            stream, expected = own, ANY_VERSION
        else:
            stream = f"shared-{rng.randrange(SHARED_STREAMS)}"
            try:
                expected = (await store.stream_info(stream)).stream_version
            except StreamNotFoundError:
                expected = 0
            if rng.random() < 0.1:
                expected += 1000  # wrong on purpose
        if stored and rng.random() < 0.05:  # a stored id at the end: the whole append fails
            events.append(EventData("Proof", {}, event_id=rng.choice(stored)))
        ids = [str(event.event_id) for event in events]
        try:
            result = await store.append_to_stream(stream, expected, events)
        except (WrongExpectedVersionError, DuplicateEventError) as exc:
            out["failed"].append({"error": type(exc).__name__, "ids": ids})
            continue
        except Exception as exc:  # reported, and the test fails on it
            out["unexpected"].append(repr(exc))
            continue
        stored.extend(ids)
        out["acked"].append(
            {
                "stream": stream,
                "ids": ids,
                "version": result.stream_version,
                "position": result.position,
            }
        )


async def main(url: str, worker: int, tasks: int, seconds: float, path: str) -> None:
    out: dict[str, Any] = {"acked": [], "failed": [], "unexpected": []}
    async with AsyncEventStore(url, pool_size=6) as store:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(_writer(store, worker, t, deadline, out) for t in range(tasks)))
    with open(path, "w") as file:
        json.dump(out, file)


if __name__ == "__main__":
    url, worker, tasks, seconds, path = sys.argv[1:6]
    asyncio.run(main(url, int(worker), int(tasks), float(seconds), path))
