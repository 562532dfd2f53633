"""evstore's side of the subscription benchmarks, through the public façade.

S1 (live): a paced writer appends one event per call to ``lanes`` streams of its own (the
exact expected version, as in W2) while one subscriber on ``$all`` takes the events: a
persistent subscription (``subscribe_to_all_streams``, acking each batch) or a transient
one (``subscribe("$all")``), in the writer's store or in a second store opened on the same
database (on PostgreSQL that subscriber learns of new events only through LISTEN/NOTIFY,
as the peer's does). Writer lanes and the subscriber are tasks on one event loop.

S2 (catch-up): a new persistent subscription from the origin reads and acks every event.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Literal

from evstore import AsyncEventStore, EventData, Subscription, TransientSubscription
from evstore.bench._data import EVENT_TYPE, new_stream_id
from evstore.bench.subscription_common import (
    AppendLog,
    LiveFigures,
    LiveWindow,
    Pacer,
    Tally,
    timed_payload,
)

__all__ = ["CatchUpOptions", "LiveOptions", "catch_up", "live"]

Kind = Literal["persistent", "transient"]


@dataclass(frozen=True)
class LiveOptions:
    """How S1 runs on evstore."""

    kind: Kind = "persistent"
    buffer_size: int = 100
    checkpoint_threshold: int = 1
    """evstore's default: the checkpoint is stored after every acknowledged batch."""
    lanes: int = 8
    drain: float = 30.0
    """Seconds the subscriber may take, after the last append returned, to hold every
    event (a missing event shows as ``delivered < appended``)."""


@dataclass(frozen=True)
class CatchUpOptions:
    """How S2 runs on evstore."""

    buffer_size: int = 1000
    max_size: int = 5000
    transient: bool = False
    checkpoint_threshold: int = 1


async def _writer(store: AsyncEventStore, pacer: Pacer, log: AppendLog) -> None:
    """One lane: its own stream, the next free slot of the shared schedule each time."""
    clock = time.perf_counter
    stream = new_stream_id()
    version = 0
    while (due := pacer.take()) is not None:
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        sent = clock()
        result = await store.append_to_stream(
            stream, version, [EventData(EVENT_TYPE, timed_payload(sent))]
        )
        log.record(due, sent, clock())
        version = result.stream_version


async def _consume(
    sub: Subscription | TransientSubscription, window: LiveWindow, tally: Tally, ack: bool
) -> None:
    clock = time.perf_counter
    measure_from = window.measure_from
    arrivals = tally.arrivals
    async for batch in sub:
        now = clock()
        for event in batch:
            sent = event.data["sent"]
            if sent >= measure_from:
                arrivals.append((sent, now))
        if ack:
            assert isinstance(sub, Subscription)
            await sub.ack(batch)
        tally.add(len(batch))
        if tally.finished.is_set():
            return


async def live(
    store: AsyncEventStore,
    subscriber_store: AsyncEventStore,
    options: LiveOptions,
    *,
    warmup: float,
    seconds: float,
    rate: float,
) -> LiveFigures:
    """S1 on evstore: subscribe, write ``warmup + seconds`` at ``rate`` appends/s, wait
    until the subscriber held every event (or ``options.drain`` passed)."""
    sub: Subscription | TransientSubscription
    if options.kind == "persistent":
        sub = await subscriber_store.subscribe_to_all_streams(
            "bench-live",
            buffer_size=options.buffer_size,
            checkpoint_threshold=options.checkpoint_threshold,
        )
        await sub.wait_subscribed(timeout=30)
    else:
        sub = await subscriber_store.subscribe("$all")
    try:
        cpu = time.process_time()
        window = LiveWindow(time.perf_counter() + 0.05, warmup, seconds, rate)
        tally, log = Tally(), AppendLog()
        consumer = asyncio.create_task(_consume(sub, window, tally, options.kind == "persistent"))
        pacer = Pacer(window)
        await asyncio.gather(*(_writer(store, pacer, log) for _ in range(options.lanes)))
        tally.expect(len(log.appends))
        done, _ = await asyncio.wait((consumer,), timeout=options.drain)
        if consumer in done:
            consumer.result()  # a failed subscription fails the cell
        else:
            consumer.cancel()
        return LiveFigures.of(window, log, tally, time.process_time() - cpu)
    finally:
        await sub.close()


async def catch_up(
    store: AsyncEventStore, name: str, total: int, options: CatchUpOptions
) -> tuple[int, float]:
    """S2 on evstore: a new subscription ``name`` from the origin reads and acks ``total``
    events; (events read, seconds from the subscribe call to the last ack)."""
    began = time.perf_counter()
    sub = await store.subscribe_to_all_streams(
        name,
        start_from="origin",
        buffer_size=options.buffer_size,
        max_size=options.max_size,
        transient=options.transient,
        checkpoint_threshold=options.checkpoint_threshold,
    )
    try:
        count = 0
        while count < total:
            batch = await sub.receive(timeout=60)
            if batch is None:
                break
            count += len(batch)
            await sub.ack(batch)
        return count, time.perf_counter() - began
    finally:
        await sub.close()
