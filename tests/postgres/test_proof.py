"""The proof: 4 processes x 8 tasks append concurrently while a reader tails $all.

Every acknowledged event is seen exactly once, in position order, positions run 1..N with no
hole (rolled-back appends give nothing back, so there is nothing to skip) and are never
seen out of order, failed appends wrote nothing, and each stream's events appear in $all in
version order.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import asyncpg

import evstore
from evstore import AsyncEventStore, RecordedEvent

WORKER = Path(__file__).with_name("_proof_worker.py")
SRC = Path(evstore.__file__).resolve().parent.parent
PROCESSES = 4
TASKS = 8
SECONDS = 4.0


async def _spawn(url: str, index: int, out: Path) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), url, str(index), str(TASKS), str(SECONDS), str(out), env=env
    )


async def test_proof_four_processes_appending_while_a_reader_tails_all(
    postgres_url: str, tmp_path: Path
) -> None:
    await AsyncEventStore.init(postgres_url)
    outputs = [tmp_path / f"worker-{i}.json" for i in range(PROCESSES)]
    workers = [await _spawn(postgres_url, i, out) for i, out in enumerate(outputs)]
    exits = asyncio.gather(*(worker.wait() for worker in workers))
    tailed: list[RecordedEvent] = []
    last = 0
    async with AsyncEventStore(postgres_url) as store:
        async with asyncio.timeout(45):
            while True:
                batch = await store.read_all_streams_forward(last + 1, 500)
                for event in batch:
                    # Contiguous and in order: never at or below a position already passed,
                    # never a jump over one that could still appear.
                    assert event.position == last + 1, (event.position, last)
                    last = event.position
                tailed.extend(batch)
                if exits.done() and not batch:
                    break
                if not batch:
                    await asyncio.sleep(0.005)  # pace the poll; the loop awaits new events
        assert await exits == [0] * PROCESSES
        full = [event async for event in store.stream_all_forward()]
        all_info = await store.stream_info("$all")
        results = [json.loads(out.read_text()) for out in outputs]
        stream_versions = {
            stream: (await store.stream_info(stream)).stream_version
            for stream in {event.stream_id for event in full}
        }
    # Both ways of getting positions happened: in the append's own transaction (no xid
    # kept) and by a sequencer cycle after commit (the xid of a row stored unnumbered).
    conn = await asyncpg.connect(postgres_url)
    try:
        ways = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE xid IS NULL), count(*) FILTER (WHERE xid IS NOT NULL) "
            "FROM events"
        )
    finally:
        await conn.close()
    assert ways[0] > 0 and ways[1] > 0, ways

    acked: list[dict[str, Any]] = [append for result in results for append in result["acked"]]
    failed: list[dict[str, Any]] = [append for result in results for append in result["failed"]]
    assert [u for result in results for u in result["unexpected"]] == []
    # The load really was concurrent and really produced both outcomes.
    assert len(acked) > 200, len(acked)
    assert {f["error"] for f in failed} == {"WrongExpectedVersionError", "DuplicateEventError"}

    # The tail saw exactly what a full read sees, which is exactly what was acknowledged.
    assert [e.event_id for e in tailed] == [e.event_id for e in full]
    seen_ids = [str(event.event_id) for event in full]
    assert len(seen_ids) == len(set(seen_ids))
    acked_ids = [event_id for append in acked for event_id in append["ids"]]
    assert set(seen_ids) == set(acked_ids)
    assert len(seen_ids) == len(acked_ids)
    assert [event.position for event in full] == list(range(1, len(full) + 1))
    assert all_info.stream_version == len(full)
    # A failed append wrote nothing (its new ids are nowhere; a reused id is there once).
    failed_new_ids = {i for f in failed for i in f["ids"]} - set(acked_ids)
    assert failed_new_ids.isdisjoint(seen_ids)

    # Each acknowledgement matches what was stored: version and position of its last event.
    by_id = {str(event.event_id): event for event in full}
    for append in acked:
        last_event = by_id[append["ids"][-1]]
        assert (last_event.position, last_event.stream_version) == (
            append["position"],
            append["version"],
        )
        assert [by_id[i].stream_id for i in append["ids"]] == [append["stream"]] * len(
            append["ids"]
        )

    # Per stream, $all order is version order, versions contiguous from 1.
    versions: dict[str, list[int]] = defaultdict(list)
    for event in full:
        versions[event.stream_id].append(event.stream_version)
    for stream, numbers in versions.items():
        assert numbers == list(range(1, len(numbers) + 1)), stream
        assert stream_versions[stream] == len(numbers)
