"""A separate process working on a shared SQLite file, for the multi-process tests.

Usage::

    python _worker.py append DB INDEX SECONDS OUT.json
    python _worker.py lifecycle DB COMMAND START_AT OUT.json

``append`` runs 8 asyncio tasks appending for SECONDS: batches of 1-20 events (often one)
to the process's own streams with ANY_VERSION, and to shared streams with an integer
expectation that is sometimes stale (those appends fail), and now and then a batch that
reuses an acknowledged event id (DuplicateEventError). It writes what was acknowledged and
what failed to OUT.json. ``lifecycle`` waits until the wall clock reaches START_AT, runs
``AsyncEventStore.<COMMAND>(url)`` and writes the returned message.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
import uuid
from typing import Any

import evstore
from evstore import AsyncEventStore, EventData

TASKS = 8
SHARED_STREAMS = 3


async def _append_task(
    store: AsyncEventStore, index: int, task: int, deadline: float, log: dict[str, Any]
) -> None:
    rng = random.Random(index * 100 + task)
    own = f"p{index}-t{task}"
    known_versions: dict[str, int] = {}
    while time.monotonic() < deadline:
        size = 1 if rng.random() < 0.5 else rng.randint(1, 20)
        events = [EventData("e", {"p": index, "t": task}) for _ in range(size)]
        roll = rng.random()
        if roll < 0.5:
            stream, expected = own, evstore.ANY_VERSION
        else:
            stream = f"shared-{rng.randrange(SHARED_STREAMS)}"
            expected = known_versions.get(stream, 0)
        fresh = [str(event.event_id) for event in events]
        if roll > 0.95 and log["acked"]:
            # Reuse an acknowledged id in the middle of the batch: the whole batch must fail.
            reused = uuid.UUID(rng.choice(log["acked"])[0])
            events.insert(len(events) // 2, EventData("e", 1, event_id=reused))
        try:
            result = await store.append_to_stream(stream, expected, events)
        except (evstore.WrongExpectedVersionError, evstore.DuplicateEventError) as exc:
            log["failed"].extend(fresh)
            log["errors"][type(exc).__name__] = log["errors"].get(type(exc).__name__, 0) + 1
            if isinstance(exc, evstore.WrongExpectedVersionError):
                known_versions[stream] = exc.actual_version or 0
            continue
        assert result.position is not None
        first_version = result.stream_version - size + 1
        first_position = result.position - size + 1
        for offset, event in enumerate(events):
            log["acked"].append(
                [str(event.event_id), stream, first_version + offset, first_position + offset]
            )
        known_versions[stream] = result.stream_version


async def _append(db: str, index: int, seconds: float) -> dict[str, Any]:
    log: dict[str, Any] = {"acked": [], "failed": [], "errors": {}}
    async with AsyncEventStore(f"sqlite:///{db}") as store:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(_append_task(store, index, t, deadline, log) for t in range(TASKS)))
    return log


async def _lifecycle(db: str, command: str, start_at: float) -> dict[str, Any]:
    time.sleep(max(0.0, start_at - time.time()))
    message = await getattr(AsyncEventStore, command)(f"sqlite:///{db}")
    return {"message": message}


def main(argv: list[str]) -> None:
    mode, db = argv[1], argv[2]
    if mode == "append":
        result = asyncio.run(_append(db, int(argv[3]), float(argv[4])))
    else:
        result = asyncio.run(_lifecycle(db, argv[3], float(argv[4])))
    with open(argv[5], "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main(sys.argv)
