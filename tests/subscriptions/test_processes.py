"""Subscriptions across real processes, on SQLite files and on PostgreSQL.

- Catch-up never skips: a subscription catching up from the origin while 4 processes
  append delivers every event exactly once and in order, goes live without a gap or a
  duplicate, and resumes after a restart at the event after its checkpoint.
- Ownership: a named subscription is active in one process at a time; when its owner is
  killed with SIGKILL, a standby takes over within the retry interval, resumes from the
  checkpoint, redelivers what was unacknowledged and loses nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from evstore import AsyncEventStore, EventData, RecordedEvent

from .conftest import PYTHON

HERE = Path(__file__).parent
WRITERS = 4
WRITE_SECONDS = 3.0


async def _spawn(env: dict[str, str], script: str, *args: object) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        PYTHON, str(HERE / script), *map(str, args), env=env
    )


async def _all_positions(store: AsyncEventStore) -> list[int]:
    return [event.position async for event in store.stream_all_forward(batch_size=5000)]


async def test_catch_up_while_four_processes_append_never_skips(
    store_url: str, tmp_path: Path, child_env: Callable[[], dict[str, str]]
) -> None:
    async with AsyncEventStore(store_url) as store:
        for chunk in range(5):  # history to catch up on
            await store.append_to_stream(
                f"history-{chunk}", 0, [EventData("Old", {"i": i}) for i in range(300)]
            )
        outputs = [tmp_path / f"writer-{i}.json" for i in range(WRITERS)]
        writers = [
            await _spawn(child_env(), "_writer.py", store_url, i, WRITE_SECONDS, out)
            for i, out in enumerate(outputs)
        ]
        delivered: list[RecordedEvent] = []
        async with store.subscribe_to_all_streams("proof", buffer_size=50, max_size=200) as sub:
            exits = asyncio.gather(*(w.wait() for w in writers))
            async with asyncio.timeout(60):
                while True:
                    try:
                        batch = await sub.receive(timeout=0.5)
                    except TimeoutError:
                        batch = []
                    assert batch is not None
                    delivered += batch
                    if batch:
                        await sub.ack(batch)
                    if exits.done() and not batch:
                        expected = await _all_positions(store)
                        if len(delivered) >= len(expected):
                            break
            assert await exits == [0] * WRITERS
            positions = [event.position for event in delivered]
            # Exactly once, in order, nothing missing: the delivered positions are $all.
            assert positions == sorted(set(positions))
            assert positions == await _all_positions(store)
            written = {i for out in outputs for i in json.loads(out.read_text())}
            assert written <= {str(event.event_id) for event in delivered}
            assert sub.checkpoint == positions[-1]

        # Restart: the checkpoint was flushed on close; new events come after it, once.
        [info] = await store.list_subscriptions()
        assert info.checkpoint == positions[-1]
        await store.append_to_stream("after", 0, [EventData("New", {"i": i}) for i in range(3)])
        async with store.subscribe_to_all_streams("proof", buffer_size=10) as sub:
            batch = await sub.receive(timeout=5)
            assert batch is not None
            assert [e.stream_id for e in batch] == ["after"] * 3
            assert batch[0].position > positions[-1]
            assert [e.position for e in batch] == (await _all_positions(store))[-3:]


async def _wait_for_line(log: Path, predicate: Callable[[list[str]], bool], seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while not (log.exists() and predicate(log.read_text().splitlines())):
            await asyncio.sleep(0.02)


async def test_standby_takes_over_after_the_owner_is_killed(
    store_url: str, tmp_path: Path, child_env: Callable[[], dict[str, str]]
) -> None:
    log = tmp_path / "owner.log"
    async with AsyncEventStore(store_url) as store:
        await store.append_to_stream("s", 0, [EventData("E", {"i": i}) for i in range(60)])
        owner = await _spawn(child_env(), "_owner.py", store_url, "job", 30, log)
        try:
            await _wait_for_line(log, lambda lines: "active" in lines, 30)
            standby = await store.subscribe_to_all_streams(
                "job", buffer_size=100, retry_interval=0.2
            )
            # The owner holds its last batch unacknowledged; the standby gets nothing.
            await _wait_for_line(log, lambda lines: sum(1 for x in lines if x.isdigit()) > 30, 30)
            assert not standby.subscribed
            try:
                await standby.receive(timeout=0.5)
                raise AssertionError("a standby must not receive events")
            except TimeoutError:
                pass
        finally:
            owner.send_signal(signal.SIGKILL)
            await owner.wait()
        killed_at = time.monotonic()
        await standby.wait_subscribed(timeout=10)
        took_over = time.monotonic() - killed_at
        assert took_over < 3.0, took_over  # retry_interval 0.2 s, plus a lock release

        lines = log.read_text().splitlines()
        acked = max(int(x.split()[1]) for x in lines if x.startswith("acked"))
        unacked = [int(x) for x in lines if x.isdigit() and int(x) > acked]
        assert unacked, "the owner must have died holding unacknowledged events"
        received: list[int] = []
        async with asyncio.timeout(10):
            while len(received) < 60 - acked:
                batch = await standby.receive()
                assert batch is not None
                received += [e.position for e in batch]
                await standby.ack(batch)
        # It resumes right after the checkpoint: everything unacked comes again, in order,
        # and nothing acked before the kill is lost or repeated beyond the checkpoint.
        checkpoint = received[0] - 1
        assert checkpoint <= acked
        assert received == list(range(checkpoint + 1, 61))
        assert set(unacked) <= set(received)
        await standby.close()
        [info] = await store.list_subscriptions()
        assert info.checkpoint == 60
    assert os.path.exists(log)
