"""Bugs a review of the subscription engine found, one test each (all fixed): a partition
in flight to two subscribers, a pin moved while its partition was in flight, stale batches
after close, a cancelled park losing its event, a large append split by a transient feed, a
stale ack cancelling a replay, and late acks after a lost ownership raising."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from evstore import ANY_VERSION, AsyncEventStore, EventData, RecordedEvent
from evstore.errors import EventStoreTimeoutError


def _memory_url() -> str:
    return f"memory://review-{uuid.uuid4().hex}"


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait (polling the loop) until ``condition()`` holds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


def _key(event: RecordedEvent) -> str:
    data = event.data
    assert isinstance(data, dict)
    key: str = data["k"]
    return key


async def test_one_partition_is_never_in_flight_to_two_subscribers_at_once() -> None:
    async with AsyncEventStore(_memory_url()) as store:
        options = dict(concurrency_limit=2, buffer_size=2, partition_by=_key)
        a = await store.subscribe_to_stream("s", "p", **options)  # type: ignore[arg-type]
        b = await store.subscribe_to_stream("s", "p", **options)  # type: ignore[arg-type]
        await a.wait_subscribed(timeout=5)

        # A1 goes to a, X1 to b (round robin), then B1 to a (least recently served):
        # a now holds A1 and B1 and remembers only partition B.
        def delivered(n: int) -> Callable[[], bool]:
            return lambda: a.in_flight + b.in_flight == n

        for count, k in enumerate(("A", "X", "B"), start=1):
            await store.append_to_stream("s", ANY_VERSION, [EventData("E", {"k": k})])
            await _until(delivered(count))
        assert a.in_flight == 2 and b.in_flight == 1
        # A2 must wait for a (which still holds A1 unacked); it must not go to b.
        await store.append_to_stream("s", ANY_VERSION, [EventData("E", {"k": "A"})])
        with pytest.raises(asyncio.TimeoutError):
            await _until(lambda: b.in_flight == 2, timeout=0.5)
        await a.close()
        await b.close()


async def test_pinned_partition_stays_serial_when_a_subscriber_joins() -> None:
    async with AsyncEventStore(_memory_url()) as store:
        options = dict(concurrency_limit=8, buffer_size=5, strategy="pinned")
        first = await store.subscribe_to_stream("$all", "pin", **options)  # type: ignore[arg-type]
        await first.wait_subscribed(timeout=5)
        # One stream (one pinned partition) in flight to the only subscriber.
        await store.append_to_stream("s-1", ANY_VERSION, [EventData("E", {})])
        await _until(lambda: first.in_flight == 1)
        # More subscribers join; the partition "s-1" is still in flight to ``first``.
        others = [
            await store.subscribe_to_stream("$all", "pin", **options)  # type: ignore[arg-type]
            for _ in range(7)
        ]
        await store.append_to_stream("s-1", ANY_VERSION, [EventData("E", {})])
        await asyncio.sleep(0.3)  # give the engine its chance to (wrongly) dispatch
        assert sum(o.in_flight for o in others) == 0, "s-1 went to a second subscriber"
        for sub in [first, *others]:
            await sub.close()


async def test_nack_stop_ends_iteration_without_stale_batches() -> None:
    async with AsyncEventStore(_memory_url()) as store:
        opts = dict(concurrency_limit=2, buffer_size=2)
        sub = await store.subscribe_to_stream("s", "stop", **opts)  # type: ignore[arg-type]
        await sub.wait_subscribed(timeout=5)
        # Two separate batches waiting in the inbox.
        await store.append_to_stream("s", ANY_VERSION, [EventData("E", {})])
        await _until(lambda: sub.in_flight == 1)
        await store.append_to_stream("s", ANY_VERSION, [EventData("E", {})])
        await _until(lambda: sub.in_flight == 2)
        first = await sub.receive(timeout=5)
        assert first is not None and [e.event_number for e in first] == [1]
        other = await store.subscribe_to_stream("s", "stop", **opts)  # type: ignore[arg-type]
        await sub.nack(first, "stop")
        # Both events go to ``other``; ``sub``'s iteration ends.
        got = await other.receive(timeout=5)
        assert got is not None
        numbers = [e.event_number for e in got]
        if numbers == [1]:
            await other.ack(got)
            got = await other.receive(timeout=5)
            assert got is not None
            numbers += [e.event_number for e in got]
        assert numbers[-1] == 2
        assert await sub.receive(timeout=1) is None  # actual: [event 2] again
        await other.close()


async def test_receive_after_close_returns_none() -> None:
    async with AsyncEventStore(_memory_url()) as store:
        opts = dict(concurrency_limit=2, buffer_size=1)
        sub = await store.subscribe_to_stream("s", "closing", **opts)  # type: ignore[arg-type]
        other = await store.subscribe_to_stream("s", "closing", **opts)  # type: ignore[arg-type]
        await sub.wait_subscribed(timeout=5)
        await store.append_to_stream("s", ANY_VERSION, [EventData("E", {})])
        await _until(lambda: sub.in_flight + other.in_flight == 1)
        holder, idle = (sub, other) if sub.in_flight else (other, sub)
        await holder.close()
        got = await idle.receive(timeout=5)
        assert got is not None and [e.event_number for e in got] == [1]
        # The closed subscriber must not get event 1 too.
        assert await holder.receive(timeout=1) is None
        await idle.close()


async def test_a_cancelled_nack_park_neither_loses_nor_blocks_the_event(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    async with AsyncEventStore(url) as store:
        await store.append_to_stream("s", 0, [EventData("E", {}) for _ in range(3)])
        sub = await store.subscribe_to_stream("s", "cancel", buffer_size=1)
        first = await sub.receive(timeout=5)
        assert first is not None and first[0].event_number == 1
        nack = asyncio.create_task(sub.nack(first, "park"))
        await asyncio.sleep(0)  # the nack is now awaiting the park on the writer thread
        nack.cancel()
        with pytest.raises(asyncio.CancelledError):
            await nack
        # Event 1 must be either parked (handled) or delivered again; then 2 and 3 come
        # and the checkpoint reaches 3.
        seen: list[int] = []
        try:
            while True:
                batch = await sub.receive(timeout=1)
                assert batch is not None
                seen += [e.event_number for e in batch]
                await sub.ack(batch)
        except EventStoreTimeoutError:
            pass
        # The park was not cut in half by the cancel: it finished on its own.
        parked = [e.event_number for e in await store.parked_events("s", "cancel")]
        assert sorted(set(seen) | set(parked)) == [1, 2, 3]
        assert sub.checkpoint == 3, f"checkpoint stuck at {sub.checkpoint}"
        await sub.close()


async def test_transient_delivers_one_batch_for_a_large_append() -> None:
    async with AsyncEventStore(_memory_url()) as store, store.subscribe("s") as sub:
        await store.append_to_stream("s", ANY_VERSION, [EventData("E", {}) for _ in range(1500)])
        batch = await sub.receive(timeout=5)
        assert batch is not None
        assert len(batch) == 1500, f"append split: first batch has {len(batch)} events"


async def test_a_stale_ack_of_a_parked_event_does_not_cancel_its_replay() -> None:
    async with AsyncEventStore(_memory_url()) as store:
        await store.append_to_stream("s", 0, [EventData("E", {}) for _ in range(2)])
        sub = await store.subscribe_to_stream("s", "replay", buffer_size=1)
        first = await sub.receive(timeout=5)
        assert first is not None and first[0].event_number == 1
        await sub.nack(first, "park")  # handled
        second = await sub.receive(timeout=5)
        assert second is not None and second[0].event_number == 2
        await store.replay_parked("s", "replay")  # 1 is queued behind the held event 2
        engine = sub._engine
        await _until(lambda: 1 in engine._entries)  # the replay is loaded
        await sub.ack(1)  # already handled: ignored, says the contract
        await sub.ack(second)
        again = await sub.receive(timeout=2)  # actual: times out, event 1 was unparked
        assert again is not None and [e.event_number for e in again] == [1]
        await sub.close()


async def _kill_advisory_lock_sessions(url: str) -> int:
    """Terminate this database's sessions holding advisory locks (the lock connection)."""
    import asyncpg

    admin = await asyncpg.connect(url)
    try:
        rows = await admin.fetch(
            "SELECT DISTINCT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " WHERE l.locktype = 'advisory' AND d.datname = current_database()"
            " AND l.pid <> pg_backend_pid()"
        )
        for row in rows:
            await admin.fetchval("SELECT pg_terminate_backend($1)", row["pid"])
        return len(rows)
    finally:
        await admin.close()


async def test_a_late_ack_after_a_lost_lock_is_ignored(postgres_url: str) -> None:
    async with AsyncEventStore(postgres_url) as store:
        await store.append_to_stream("s", 0, [EventData("E", {}) for _ in range(4)])
        sub = await store.subscribe_to_stream(
            "s", "late", buffer_size=1, max_size=2, checkpoint_threshold=100, retry_interval=0.05
        )
        held = None
        for _ in range(4):
            held = await sub.receive(timeout=5)
            assert held is not None
            if held[0].event_number < 4:
                await sub.ack(held)
        assert held is not None and held[0].event_number == 4
        engine = sub._engine
        epoch = engine._epoch
        assert await _kill_advisory_lock_sessions(postgres_url) >= 1
        await _until(lambda: engine._epoch > epoch and engine.active, timeout=10)
        # Event 4 comes again later; this late ack must be ignored, not rejected.
        await sub.ack(held)  # actual: InvalidArgumentError "never delivered"
        await sub.close()
