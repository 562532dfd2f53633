"""Several processes on one SQLite file: positions, atomicity and migrations hold across them."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

import evstore
from evstore import AsyncEventStore

WORKER = Path(__file__).with_name("_worker.py")
SRC = Path(evstore.__file__).resolve().parent.parent


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    return await asyncio.create_subprocess_exec(sys.executable, str(WORKER), *args, env=env)


def _load(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(path.read_text())
    return result


@pytest.mark.slow
async def test_sqlite_multiprocess_appends_reach_all_exactly_once_in_position_order(
    sqlite_path: Path, tmp_path: Path
) -> None:
    await AsyncEventStore.init(f"sqlite:///{sqlite_path}")
    outputs = [tmp_path / f"worker-{i}.json" for i in range(4)]
    workers = [
        await _spawn("append", str(sqlite_path), str(i), "4", str(out))
        for i, out in enumerate(outputs)
    ]
    seen: list[evstore.RecordedEvent] = []
    last = 0
    async with AsyncEventStore(f"sqlite:///{sqlite_path}") as store:
        finished = False
        while True:
            batch = await store.read_all_streams_forward(last + 1, 1000)
            for event in batch:
                # Never at or below a position already passed, and no hole: rolled-back
                # appends give their positions back, and there are no hard deletes.
                assert event.position == last + 1, (event.position, last)
                last = event.position
            seen.extend(batch)
            if batch:
                continue
            if finished:
                break
            if all(w.returncode is not None for w in workers):
                finished = True  # one more read after every writer has exited
            else:
                await asyncio.sleep(0.005)  # tailing $all is polling by nature
    codes = [await asyncio.wait_for(w.wait(), 30) for w in workers]
    assert codes == [0, 0, 0, 0]

    logs = [_load(out) for out in outputs]
    acked = {row[0]: tuple(row[1:]) for log in logs for row in log["acked"]}
    failed = {event_id for log in logs for event_id in log["failed"]}
    errors: dict[str, int] = defaultdict(int)
    for log in logs:
        for name, count in log["errors"].items():
            errors[name] += count
    seen_ids = [str(e.event_id) for e in seen]
    assert len(seen_ids) == len(set(seen_ids)), "an event appeared twice in $all"
    assert set(seen_ids) == set(acked), "$all differs from the acknowledged events"
    assert not failed & set(seen_ids), "a failed append wrote events"
    for event in seen:
        assert acked[str(event.event_id)] == (event.stream_id, event.stream_version, event.position)
    # Each stream's versions appear in $all as 1..n in position order.
    versions: dict[str, list[int]] = defaultdict(list)
    for event in seen:
        versions[event.stream_id].append(event.stream_version)
    for stream, numbers in versions.items():
        assert numbers == list(range(1, len(numbers) + 1)), stream
    # The run proves something only if it had volume, contention and failures.
    assert len(seen) > 2000
    assert errors["WrongExpectedVersionError"] > 10
    assert errors["DuplicateEventError"] > 0
    assert len({e.stream_id for e in seen if e.stream_id.startswith("p")}) == 32


@pytest.mark.slow
@pytest.mark.parametrize("commands", [("migrate",) * 3, ("init", "migrate", "init")])
async def test_sqlite_concurrent_migrations_from_processes_record_one_migration(
    sqlite_path: Path, tmp_path: Path, commands: tuple[str, ...]
) -> None:
    outputs = [tmp_path / f"lifecycle-{i}.json" for i in range(len(commands))]
    start_at = time.time() + 1.5  # let every interpreter start, then go together
    workers = [
        await _spawn("lifecycle", str(sqlite_path), command, str(start_at), str(out))
        for command, out in zip(commands, outputs, strict=True)
    ]
    codes = [await asyncio.wait_for(w.wait(), 30) for w in workers]
    assert codes == [0] * len(commands)
    messages = [_load(out)["message"] for out in outputs]
    done = [m for m in messages if "already" not in m]
    assert len(done) == 1, messages
    with sqlite3.connect(sqlite_path) as conn:
        versions = conn.execute("SELECT version FROM schema_migrations ORDER BY version")
        assert versions.fetchall() == [("1",), ("2",)]
    assert await AsyncEventStore.schema_version(f"sqlite:///{sqlite_path}") == "2"
