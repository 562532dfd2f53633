"""Back-pressure and memory: a subscriber that stops acking stops receiving; the engine
holds at most ``max_size`` events; a million events to a slow consumer stay in bounds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from evstore import ANY_VERSION, AsyncEventStore, EventData

from .conftest import PYTHON

HERE = Path(__file__).parent


async def test_a_subscriber_that_stops_acking_stops_receiving(store_url: str) -> None:
    async with AsyncEventStore(store_url) as store:
        await store.append_to_stream("s", 0, [EventData("E", {"i": i}) for i in range(1000)])
        sub = await store.subscribe_to_stream("s", "slow", buffer_size=5, max_size=50)
        engine = sub._engine
        first = await sub.receive(timeout=5)
        assert first is not None and [e.event_number for e in first] == [1, 2, 3, 4, 5]
        # More appends while it does not ack: nothing more arrives, memory stays bounded.
        await store.append_to_stream("s", ANY_VERSION, [EventData("E", {}) for _ in range(500)])
        try:
            await sub.receive(timeout=0.3)
            raise AssertionError("no batch may arrive beyond buffer_size without an ack")
        except TimeoutError:
            pass
        assert engine._queue_size <= 50
        assert len(engine._entries) <= 55  # in flight + queued
        await sub.ack(first)
        second = await sub.receive(timeout=5)
        assert second is not None and [e.event_number for e in second] == [6, 7, 8, 9, 10]
        await sub.close()


async def test_the_queue_never_exceeds_max_size_while_catching_up(store_url: str) -> None:
    async with AsyncEventStore(store_url) as store:
        await store.append_to_stream("s", 0, [EventData("E", {"i": i}) for i in range(3000)])
        seen = 0
        largest = 0
        async with store.subscribe_to_all_streams("bounded", buffer_size=40, max_size=100) as sub:
            while seen < 3000:
                batch = await sub.receive(timeout=5)
                assert batch is not None and len(batch) <= 40
                largest = max(largest, sub._engine._queue_size)
                seen += len(batch)
                await sub.ack(batch)
        assert largest <= 100


async def test_a_million_events_to_a_slow_consumer_keep_rss_growth_under_100_mb(
    tmp_path: Path, child_env: Callable[[], dict[str, str]]
) -> None:
    # SQLite only: the engine is the same on every backend; this bounds its memory.
    url = f"sqlite:///{tmp_path / 'million.db'}"
    worker = await asyncio.create_subprocess_exec(
        PYTHON,
        str(HERE / "_rss_worker.py"),
        url,
        "1000000",
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(600):
        out, _ = await worker.communicate()
    assert worker.returncode == 0
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["delivered"] == 1_000_000
    growth = result["peak"] - result["before"]
    assert growth < 100 * 1024 * 1024, f"RSS grew by {growth / 2**20:.1f} MB"
