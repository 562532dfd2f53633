"""The persistent-subscription engine: one per running named subscription in a store.

It reads the subscribed stream (or ``$all``) from the database by event number, holds at
most ``max_size`` events in memory, hands them to its consumers (competing consumers with
the distribution rules of the Elixir EventStore and the KurrentDB strategies), tracks what
each consumer has in flight, and moves the checkpoint over contiguous handled events only.

Catch-up and live are the same loop: when the in-memory queue is empty it reads the next
page after the last event it read; when a read finds nothing it waits for the backend's
change signal or ``poll_interval``. There is no "live mode" fed by notifications, so a
missed notification costs at most one poll interval and can never skip an event (the
Elixir engine's gap detection and its checkpoint-timer bug have nothing to act on).

Ownership: a non-transient subscription delivers only while it holds the backend's lock
on its name; without it the engine is a standby that retries every ``retry_interval``.
When the lock is lost, everything in memory is dropped and, once re-acquired, delivery
restarts after the stored checkpoint (at-least-once).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable
from datetime import UTC, datetime
from typing import Any

from evstore._tasks import retrieve
from evstore._types import ALL_STREAM, RecordedEvent
from evstore.backends.base import ParkedEntry, StorageBackend, SubscriptionLock
from evstore.errors import (
    AlreadySubscribedError,
    EventStoreTimeoutError,
    InvalidArgumentError,
    StorageError,
    StreamNotFoundError,
    SubscriptionError,
    TooManySubscribersError,
)
from evstore.subscriptions._inbox import Inbox
from evstore.subscriptions._options import NackAction, SubscriptionOptions
from evstore.subscriptions._waker import Waker

__all__ = ["Consumer", "PersistentEngine", "ReadEvents", "read_parked"]

log = logging.getLogger("evstore.subscriptions")

ReadEvents = Callable[[str, int, int], Awaitable[list[RecordedEvent]]]
"""``read(stream_id, start, count)``: events with ``event_number >= start``, ascending."""

PIN_BUCKETS = 1024
_UNPARTITIONED = object()
# Replays of parked events are looked for (across processes) every this many poll intervals.
_REPLAY_POLLS = 10


class _Entry:
    """An event the engine holds between reading it and it being handled."""

    __slots__ = (
        "bucket",
        "deliveries",
        "event",
        "number",
        "owner",
        "partition",
        "replayed",
        "retry_count",
        "sent_at",
    )

    def __init__(self, event: RecordedEvent, partition: Any, bucket: int, replayed: bool) -> None:
        self.event = event
        self.number = event.event_number
        self.partition = partition
        self.bucket = bucket
        self.replayed = replayed
        self.retry_count = 0
        self.deliveries = 0
        self.owner: Consumer | None = None
        self.sent_at = 0.0


class Consumer:
    """One subscriber connected to an engine."""

    __slots__ = (
        "buffer_size",
        "identity",
        "in_flight",
        "inbox",
        "last_sent",
        "order",
        "partitions",
    )

    def __init__(self, identity: Hashable, buffer_size: int, order: int) -> None:
        self.identity = identity
        self.buffer_size = buffer_size
        self.order = order
        self.in_flight: dict[int, _Entry] = {}
        self.last_sent = 0
        # Partitions with events in flight to this consumer, and how many: a partition
        # goes to one consumer at a time, until all its events there are acknowledged.
        self.partitions: dict[Any, int] = {}
        self.inbox = Inbox()

    @property
    def has_room(self) -> bool:
        return len(self.in_flight) < self.buffer_size

    def hold(self, entry: _Entry) -> None:
        """``entry`` is now in flight to this consumer."""
        self.in_flight[entry.number] = entry
        if entry.partition is not _UNPARTITIONED:
            self.partitions[entry.partition] = self.partitions.get(entry.partition, 0) + 1

    def drop(self, number: int) -> _Entry | None:
        """Take the event ``number`` out of this consumer's in-flight events."""
        entry = self.in_flight.pop(number, None)
        if entry is not None and entry.partition is not _UNPARTITIONED:
            left = self.partitions[entry.partition] - 1
            if left:
                self.partitions[entry.partition] = left
            else:
                del self.partitions[entry.partition]
        return entry

    def drop_all(self) -> list[_Entry]:
        """Take every in-flight event back."""
        entries = list(self.in_flight.values())
        self.in_flight.clear()
        self.partitions.clear()
        return entries


class PersistentEngine:
    """A running persistent subscription (see the module docstring)."""

    def __init__(
        self,
        *,
        stream_id: str,
        name: str,
        options: SubscriptionOptions,
        start_from: int,
        backend: StorageBackend,
        read: ReadEvents,
        on_stopped: Callable[[PersistentEngine], None],
    ) -> None:
        self.stream_id = stream_id
        self.name = name
        self.options = options
        self._start_from = start_from
        self._backend = backend
        self._read = read
        self._on_stopped = on_stopped
        self.consumers: list[Consumer] = []
        self._next_order = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._waker = Waker(backend)
        self._lock: SubscriptionLock | None = None
        self.active = False
        self._activated = asyncio.Event()
        self._finished = asyncio.Event()
        self._orphaned: set[int] = set()
        self._epoch = 0
        self._checkpoint_write: asyncio.Task[None] | None = None
        self.error: BaseException | None = None
        self._reset_memory()
        self.last_ack = 0
        self._persisted = 0
        self._pending = 0
        self._last_advance = 0.0
        self._replay_wanted = True
        self._next_replay_check = 0.0
        self._lost_watch: asyncio.Task[None] | None = None

    def _reset_memory(self) -> None:
        self._queues: dict[Any, deque[_Entry]] = {}
        self._queue_size = 0
        self._entries: dict[int, _Entry] = {}
        # Numbers read and not yet checkpointed (ascending), and which of them are handled.
        self._unhandled: deque[int] = deque()
        self._done: set[int] = set()
        self._last_received = 0
        self._unpark: list[int] = []
        self._end_of_source = False
        self._end_generation = -1
        self._next_poll = 0.0

    # -- consumers -----------------------------------------------------------------

    def connect(self, identity: Hashable, buffer_size: int, limit: int | None) -> Consumer:
        """Add a consumer (the first one starts the engine).

        Raises:
            AlreadySubscribedError, TooManySubscribersError.
        """
        if any(c.identity == identity for c in self.consumers):
            raise AlreadySubscribedError(
                f"subscriber {identity!r} is already connected to subscription "
                f"{self.name!r} on {self.stream_id!r}",
                stream_id=self.stream_id,
                subscription_name=self.name,
            )
        if limit is not None and len(self.consumers) >= limit:
            raise TooManySubscribersError(
                f"subscription {self.name!r} on {self.stream_id!r} already has "
                f"{len(self.consumers)} subscribers (concurrency_limit {limit})",
                stream_id=self.stream_id,
                subscription_name=self.name,
            )
        consumer = Consumer(identity, buffer_size, self._next_order)
        self._next_order += 1
        self.consumers.append(consumer)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"evstore-subscription-{self.stream_id}-{self.name}"
            )
        else:
            self._dispatch()
        return consumer

    async def disconnect(self, consumer: Consumer) -> None:
        """Remove a consumer; its unacked events go to the others. The last one stops the
        engine (checkpoint flushed, ownership released) before this returns."""
        if consumer in self.consumers:
            self.consumers.remove(consumer)
            self._requeue(consumer.drop_all())
            consumer.inbox.close()
            if self.consumers:
                self._dispatch()
                self._kick()
                return
        if not self.consumers:
            await self.stop()

    @property
    def stopping(self) -> bool:
        """True once the engine is shutting down (no new subscriber may join it)."""
        return self._stopping

    async def stop(self) -> None:
        """Stop delivering: consumers' iterations end, the checkpoint is flushed and the
        ownership released before this returns. Idempotent."""
        self._stopping = True
        self._waker.close()
        task = self._task
        if task is not None and task is not asyncio.current_task():
            await asyncio.shield(task)
        elif task is None:
            self._finish()

    async def wait_active(self, timeout: float | None) -> None:
        """Wait until this engine owns the subscription and delivers.

        Raises:
            EventStoreTimeoutError: not within ``timeout`` seconds.
            SubscriptionError: the subscription ended first (chained from its error).
        """
        waiters = [
            asyncio.ensure_future(self._activated.wait()),
            asyncio.ensure_future(self._finished.wait()),
        ]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        if self.active and not self._stopping:
            return
        if self._finished.is_set() or self._stopping:
            raise SubscriptionError(
                f"subscription {self.name!r} on {self.stream_id!r} has ended",
                stream_id=self.stream_id,
                subscription_name=self.name,
            ) from self.error
        raise EventStoreTimeoutError(
            f"subscription {self.name!r} on {self.stream_id!r} did not become active "
            f"within {timeout} s (another process may own it)"
        )

    # -- acknowledgements ------------------------------------------------------------

    async def ack(self, consumer: Consumer, number: int) -> None:
        """Acknowledge ``number`` and everything earlier in flight to ``consumer``."""
        if not self.active:
            return  # acks while not owning are ignored: the events will come again
        if number in consumer.in_flight:
            acked = [e for n, e in consumer.in_flight.items() if n <= number]
            for entry in acked:
                consumer.drop(entry.number)
                self._handled(entry)
        else:
            if number in self._orphaned and number not in self._entries:
                return  # delivered before a lost ownership: ignored, it comes again
            tracked = self._entries.get(number)
            if tracked is None:
                if number > self._last_received:
                    raise InvalidArgumentError(
                        f"ack: event {number} was never delivered by this subscription",
                        argument="ack",
                    )
                return  # already handled
            if tracked.deliveries == 0:
                if number in self._orphaned or tracked.replayed:
                    return  # an ack from before a lost ownership, or of the parked event
                raise InvalidArgumentError(
                    f"ack: event {number} has not been delivered yet", argument="ack"
                )
            self._withdraw(tracked)  # delivered before; now queued again or with another
            self._handled(tracked)
        self._advance_checkpoint()
        self._dispatch()
        self._kick()

    async def nack(self, consumer: Consumer, numbers: Iterable[int], action: NackAction) -> None:
        """Apply ``action`` to each of ``numbers`` in flight to ``consumer``."""
        if not self.active:
            return
        taken: list[_Entry] = []
        for number in numbers:
            entry = consumer.drop(number)
            if entry is None:
                if number in self._orphaned:
                    continue  # delivered before a lost ownership: it comes again
                tracked = self._entries.get(number)
                if tracked is None and number <= self._last_received:
                    continue  # handled already
                if tracked is not None and (
                    tracked.deliveries or tracked.replayed or number in self._orphaned
                ):
                    continue  # taken back (timed out, or a lost ownership): it comes again
                raise InvalidArgumentError(
                    f"nack: event {number} was never delivered by this subscription",
                    argument="events",
                )
            entry.owner = None
            taken.append(entry)
        if action in ("retry", "park"):
            # Parking writes to the database. The write runs as its own task: a caller
            # cancelled meanwhile does not cut it in half, and if it fails the events go
            # back to the queue instead of being lost; either way dispatch resumes.
            work = (
                self._retry(taken, "nack retry") if action == "retry" else self._park(taken, "nack")
            )
            settling = asyncio.ensure_future(self._settle(work, taken))
            settling.add_done_callback(retrieve)
            await asyncio.shield(settling)
            return
        if action == "skip":
            for entry in taken:
                self._handled(entry)
        else:  # stop: this consumer leaves; nothing it held counts as handled
            self._requeue(taken)
            await self.disconnect(consumer)
            return
        self._advance_checkpoint()
        self._dispatch()
        self._kick()

    def retry_count(self, consumer: Consumer, number: int) -> int:
        """How many times the event ``number`` in flight to ``consumer`` was retried."""
        entry = consumer.in_flight.get(number) or self._entries.get(number)
        if entry is None:
            raise InvalidArgumentError(
                f"event {number} is not in flight for this subscriber", argument="event"
            )
        return entry.retry_count

    def request_replay(self) -> None:
        """Parked events were marked for replay: pick them up at once."""
        self._replay_wanted = True
        self._kick()

    # -- the loop ----------------------------------------------------------------------

    def _kick(self) -> None:
        self._waker.kick()

    async def _sleep(self, seconds: float | None, seen: int | None = None) -> None:
        await self._waker.sleep(seconds, seen)

    async def _run(self) -> None:
        try:
            await self._backend.watch_changes()
            while not self._stopping:
                if not await self._take_ownership():
                    break
                lost = await self._deliver()
                if lost and not self._stopping:
                    log.warning(
                        "subscription %r on %r lost its ownership; retrying in %s s",
                        self.name,
                        self.stream_id,
                        self.options.retry_interval,
                    )
                    self._deactivate()
                    await self._sleep(self.options.retry_interval)
        except Exception as exc:  # one subscription's failure must not touch the others
            log.exception("subscription %r on %r failed", self.name, self.stream_id)
            self.error = exc
        finally:
            await self._shutdown()

    async def _take_ownership(self) -> bool:
        """Wait (as a standby) until this engine owns the name; False when stopping."""
        if self.options.transient:
            self._activate(self._start_from)
            return True
        while not self._stopping:
            try:
                lock = await self._backend.try_lock_subscription(self.stream_id, self.name)
                if lock is not None:
                    try:
                        last_seen = await self._backend.subscription_checkpoint(
                            self.stream_id, self.name, self._start_from
                        )
                    except BaseException:
                        await lock.release()
                        raise
                    self._lock = lock
                    self._lost_watch = asyncio.get_running_loop().create_task(
                        self._watch_lost(lock)
                    )
                    self._activate(last_seen)
                    return True
            except (StorageError, EventStoreTimeoutError) as exc:
                log.warning("subscription %r: cannot take ownership yet: %s", self.name, exc)
            await self._sleep(self.options.retry_interval)
        return False

    async def _watch_lost(self, lock: SubscriptionLock) -> None:
        await lock.wait_lost()
        self._kick()

    def _activate(self, last_seen: int) -> None:
        self._epoch += 1
        self._reset_memory()
        self._last_received = last_seen
        self.last_ack = self._persisted = last_seen
        self._pending = 0
        self._replay_wanted = True
        self.active = True
        self._activated.set()

    def _deactivate(self) -> None:
        # Acks and nacks of what was in flight are ignored from now on (it comes again).
        self._orphaned.update(n for c in self.consumers for n in c.in_flight)
        self.active = False
        self._activated.clear()
        self._lock = None
        if self._lost_watch is not None:
            self._lost_watch.cancel()
            self._lost_watch = None
        for consumer in self.consumers:
            consumer.drop_all()
            consumer.last_sent = 0
            consumer.inbox.purge()
        self._reset_memory()

    async def _deliver(self) -> bool:
        """Deliver until stopping (False) or the ownership is lost (True)."""
        lock = self._lock
        loop = asyncio.get_running_loop()
        changes = self._backend.changes
        while not self._stopping:
            if lock is not None and lock.lost:
                return True
            seen = changes.generation
            try:
                await self._flush_unparked()
                if self._replay_wanted or loop.time() >= self._next_replay_check:
                    await self._load_replays(loop.time())  # ahead of new events
                read_some = await self._fill(seen, loop.time())
                await self._expire(loop.time())
                await self._checkpoint(loop.time())
            except (StorageError, EventStoreTimeoutError) as exc:
                log.warning("subscription %r on %r: %s; retrying", self.name, self.stream_id, exc)
                await self._sleep(self.options.retry_interval)
                continue
            if (
                read_some
                and not self._end_of_source
                and self._queue_size * 2 <= self.options.max_size
            ):
                continue  # a full page was handed out or filtered: read on at once
            await self._sleep(self._next_deadline(loop.time()), seen)
        return False

    def _next_deadline(self, now: float) -> float:
        delay = self._backend.poll_interval
        if self._end_of_source:
            delay = min(delay, self._next_poll - now)
        timeout = self.options.message_timeout
        if timeout is not None:
            for consumer in self.consumers:
                for entry in consumer.in_flight.values():
                    delay = min(delay, entry.sent_at + timeout - now)
        writing = self._checkpoint_write
        if (
            self._pending
            and self.options.checkpoint_after > 0
            and (writing is None or writing.done())
        ):
            delay = min(delay, self._last_advance + self.options.checkpoint_after - now)
        return max(delay, 0.0)

    async def _fill(self, seen: int, now: float) -> bool:
        """Refill the queue once it is at most half full. True when events were read.

        Refilling before the queue is empty keeps idle consumers busy while one partition
        waits for its consumer; refilling only below half keeps reads large. After a read
        that reached the end, the next one waits for the change signal to move past
        ``seen`` or for the poll interval, so acks do not cost empty reads.
        """
        room = self.options.max_size - self._queue_size
        if not self.consumers or (self._queue_size and self._queue_size > room):
            return False
        if self._end_of_source and seen == self._end_generation and now < self._next_poll:
            return False
        try:
            events = await self._read(self.stream_id, self._last_received + 1, room)
        except StreamNotFoundError:
            events = []  # the stream may be created later
        self._end_of_source = len(events) < room
        if self._end_of_source:
            self._end_generation = seen
            self._next_poll = now + self._backend.poll_interval
        if not events:
            return False
        self._enqueue(events)
        self._dispatch()
        return True

    def _enqueue(self, events: list[RecordedEvent]) -> None:
        selector = self.options.selector
        for event in events:
            number = event.event_number
            if number <= self._last_received:
                continue
            self._last_received = number
            self._unhandled.append(number)
            if selector is not None and not selector(event):
                self._done.add(number)
                continue
            entry = self._new_entry(event, replayed=False)
            self._entries[number] = entry
            self._queues.setdefault(entry.partition, deque()).append(entry)
            self._queue_size += 1
        self._advance_checkpoint()

    def _new_entry(self, event: RecordedEvent, *, replayed: bool) -> _Entry:
        options = self.options
        strategy = options.strategy
        if options.partition_by is not None:
            partition: Any = options.partition_by(event)
        elif strategy == "pinned":
            partition = event.stream_id
        elif strategy == "pinned_by_correlation":
            partition = _correlation(event)
        else:
            partition = _UNPARTITIONED
        bucket = 0
        if strategy in ("pinned", "pinned_by_correlation"):
            bucket = zlib.crc32(repr(partition).encode()) % PIN_BUCKETS
        return _Entry(event, partition, bucket, replayed)

    # -- dispatch ----------------------------------------------------------------------

    def _dispatch(self) -> None:
        if not self.active or not self.consumers or not self._queue_size:
            return
        outgoing: dict[Consumer, list[_Entry]] = {}
        now = asyncio.get_running_loop().time()
        for key in sorted(self._queues, key=lambda k: self._queues[k][0].number):
            queue = self._queues[key]
            while queue:
                entry = queue[0]
                consumer = self._pick(entry)
                if consumer is None:
                    break
                queue.popleft()
                self._queue_size -= 1
                entry.owner = consumer
                entry.sent_at = now
                entry.deliveries += 1
                consumer.hold(entry)
                consumer.last_sent = entry.number
                outgoing.setdefault(consumer, []).append(entry)
            if not queue:
                del self._queues[key]
        mapper = self.options.mapper
        for consumer, entries in outgoing.items():
            entries.sort(key=lambda e: e.number)
            if mapper is None:
                consumer.inbox.put([e.event for e in entries])
                continue
            try:
                batch = [mapper(e.event) for e in entries]
            except Exception as exc:
                self._fail(exc)
                return
            consumer.inbox.put(batch)

    def _fail(self, error: BaseException) -> None:
        """End the subscription with ``error`` (reported to its consumers)."""
        log.error("subscription %r on %r failed: %r", self.name, self.stream_id, error)
        if self.error is None:
            self.error = error
        self._stopping = True
        self._waker.close()

    def _pick(self, entry: _Entry) -> Consumer | None:
        consumers = self.consumers
        if len(consumers) == 1:
            only = consumers[0]
            return only if only.has_room else None
        if entry.partition is not _UNPARTITIONED:
            # A partition with events in flight stays with that consumer (even when the
            # consumers changed since: a pin moves only once the partition is idle).
            for consumer in consumers:
                if entry.partition in consumer.partitions:
                    return consumer if consumer.has_room else None
        strategy = self.options.strategy
        if strategy in ("pinned", "pinned_by_correlation"):
            pinned = consumers[entry.bucket % len(consumers)]
            return pinned if pinned.has_room else None
        if strategy == "dispatch_to_single":
            for consumer in consumers:  # connection order
                if consumer.has_room:
                    return consumer
            return None
        # round_robin: the least recently served consumer with room (ties: connection order).
        best: Consumer | None = None
        for consumer in consumers:
            if consumer.has_room and (
                best is None or (consumer.last_sent, consumer.order) < (best.last_sent, best.order)
            ):
                best = consumer
        return best

    def _requeue(self, entries: list[_Entry]) -> None:
        """Put events back at the front of their partitions, in event-number order."""
        by_partition: dict[Any, list[_Entry]] = {}
        for entry in entries:
            entry.owner = None
            by_partition.setdefault(entry.partition, []).append(entry)
        for partition, returned in by_partition.items():
            queue = self._queues.get(partition, deque())
            self._queues[partition] = deque(sorted([*returned, *queue], key=lambda e: e.number))
            self._queue_size += len(returned)

    async def _settle(self, work: Awaitable[None], taken: list[_Entry]) -> None:
        try:
            await work
        except BaseException:
            lost = [
                e
                for e in taken
                if self._entries.get(e.number) is e and e.owner is None and not self._queued(e)
            ]
            self._requeue(lost)
            raise
        finally:
            self._advance_checkpoint()
            self._dispatch()
            self._kick()

    def _queued(self, entry: _Entry) -> bool:
        queue = self._queues.get(entry.partition)
        return queue is not None and entry in queue

    def _withdraw(self, entry: _Entry) -> None:
        """Take an entry out of wherever it waits (a queue or another consumer)."""
        if entry.owner is not None:
            entry.owner.drop(entry.number)
            entry.owner = None
            return
        queue = self._queues.get(entry.partition)
        if queue is not None and entry in queue:
            queue.remove(entry)
            self._queue_size -= 1
            if not queue:
                del self._queues[entry.partition]

    # -- handling, retries, parking ------------------------------------------------------

    def _handled(self, entry: _Entry) -> None:
        if self._entries.get(entry.number) is entry:
            del self._entries[entry.number]
        if entry.replayed:
            self._unpark.append(entry.number)
        else:
            self._done.add(entry.number)

    async def _retry(self, entries: list[_Entry], reason: str) -> None:
        exhausted = [e for e in entries if e.retry_count >= self.options.max_retry_count]
        again = [e for e in entries if e.retry_count < self.options.max_retry_count]
        for entry in again:
            entry.retry_count += 1
        self._requeue(again)
        if exhausted:
            await self._park(exhausted, f"{reason}: max retries ({self.options.max_retry_count})")

    async def _park(self, entries: list[_Entry], reason: str) -> None:
        if not entries:
            return
        now = datetime.now(UTC)
        await self._backend.park(
            self.stream_id,
            self.name,
            [ParkedEntry(e.number, e.event.position, reason, e.retry_count, now) for e in entries],
        )
        for entry in entries:
            if self._entries.get(entry.number) is entry:
                del self._entries[entry.number]
            if not entry.replayed:
                self._done.add(entry.number)
        self._advance_checkpoint()

    async def _expire(self, now: float) -> None:
        timeout = self.options.message_timeout
        if timeout is None:
            return
        expired: list[_Entry] = []
        for consumer in self.consumers:
            late = [e for e in consumer.in_flight.values() if now - e.sent_at >= timeout]
            for entry in late:
                consumer.drop(entry.number)
                entry.owner = None
            expired += late
        if expired:
            await self._retry(expired, "message timeout")
            self._dispatch()

    async def _flush_unparked(self) -> None:
        if self._unpark:
            numbers, self._unpark = self._unpark, []
            await self._backend.unpark(self.stream_id, self.name, numbers)

    async def _load_replays(self, now: float) -> None:
        """Queue parked events marked for replay, ahead of new events."""
        self._replay_wanted = False
        self._next_replay_check = now + _REPLAY_POLLS * self._backend.poll_interval
        parked = await self._backend.parked(self.stream_id, self.name)
        wanted = [
            p
            for p in parked
            if p.replay_requested
            and p.event_number not in self._entries
            and p.event_number not in self._unpark
        ]
        if not wanted:
            return
        entries: list[_Entry] = []
        gone: list[int] = []
        for item in wanted:
            event = await read_parked(self._read, item)
            if event is None:
                gone.append(item.event_number)  # hard deleted since it was parked
                continue
            entry = self._new_entry(event, replayed=True)
            entry.retry_count = item.retry_count
            self._entries[entry.number] = entry
            entries.append(entry)
        if gone:
            await self._backend.unpark(self.stream_id, self.name, gone)
        self._requeue(entries)
        self._dispatch()

    # -- checkpoints -------------------------------------------------------------------

    def _advance_checkpoint(self) -> None:
        unhandled, done = self._unhandled, self._done
        moved = False
        while unhandled and unhandled[0] in done:
            number = unhandled.popleft()
            done.discard(number)
            self.last_ack = number
            self._pending += 1
            moved = True
        if moved:
            self._last_advance = asyncio.get_running_loop().time()

    async def _checkpoint(self, now: float, *, force: bool = False) -> None:
        """Store the checkpoint when it is due.

        The write runs beside the delivery loop (one at a time; the next one takes the
        latest value), so a durable UPDATE never delays handing out events. ``force``
        (stopping) waits for the write in flight and then writes what is left.
        """
        writing = self._checkpoint_write
        if force:
            if writing is not None:
                await asyncio.shield(writing)
            if not self.options.transient and self.last_ack != self._persisted:
                await self._store_checkpoint()
            return
        if self.options.transient or self.last_ack == self._persisted:
            return
        if writing is not None and not writing.done():
            return  # the write in flight kicks the loop when it is done
        after = self.options.checkpoint_after
        if self._pending >= self.options.checkpoint_threshold or (
            after > 0 and now - self._last_advance >= after
        ):
            self._checkpoint_write = asyncio.get_running_loop().create_task(
                self._checkpoint_in_background()
            )

    async def _store_checkpoint(self) -> None:
        epoch, value, written = self._epoch, self.last_ack, self._pending
        await self._backend.store_checkpoint(self.stream_id, self.name, value)
        if epoch == self._epoch:  # not from before a lost and retaken ownership
            self._persisted = value
            # Acks handled while the write was in flight still count towards the next one.
            self._pending -= written

    async def _checkpoint_in_background(self) -> None:
        try:
            await self._store_checkpoint()
        except (StorageError, EventStoreTimeoutError) as exc:
            log.warning("subscription %r: checkpoint not stored yet: %s", self.name, exc)
        except Exception as exc:
            self._fail(exc)
        finally:
            self._kick()  # more may have become due meanwhile

    async def _shutdown(self) -> None:
        if self.active and self._lock is not None and self._lock.lost:
            self.active = False  # another owner may be running: do not write
        if self.active:
            try:
                await self._flush_unparked()
                await self._checkpoint(0.0, force=True)
            except Exception:
                log.exception("subscription %r: could not flush its checkpoint", self.name)
        self.active = False
        if self._lost_watch is not None:
            self._lost_watch.cancel()
            self._lost_watch = None
        if self._lock is not None:
            with contextlib.suppress(Exception):
                await self._lock.release()
            self._lock = None
        self._finish()

    def _finish(self) -> None:
        self._stopping = True
        self._finished.set()
        for consumer in self.consumers:
            consumer.inbox.close(self.error)
        self.consumers.clear()
        self._on_stopped(self)


def _correlation(event: RecordedEvent) -> Any:
    if event.correlation_id is not None:
        return event.correlation_id
    metadata = event.metadata
    if isinstance(metadata, dict) and metadata.get("$correlationId") is not None:
        return metadata["$correlationId"]
    return event.stream_id


async def read_parked(read: ReadEvents, parked: ParkedEntry) -> RecordedEvent | None:
    """A parked event read back by its position and numbered as it was delivered;
    ``None`` when it was hard deleted since it was parked."""
    found = await read(ALL_STREAM, parked.position, 1)
    if not found or found[0].position != parked.position:
        return None
    event = found[0]
    if event.event_number != parked.event_number:
        event = dataclasses.replace(event, event_number=parked.event_number)
    return event
