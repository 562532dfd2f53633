"""The peer's side of the subscription benchmarks: eventsourcing 9.5.6's own subscription
mechanism, driven exactly like evstore's (same schedule, same payload, same clock).

eventsourcing's subscription is ``ApplicationRecorder.subscribe(gt=...)``: an iterator of
``Notification`` objects (``ApplicationSubscription`` wraps it and maps each notification
to a domain event through an application's mapper, which these benchmarks have no use
for: they compare the delivery of stored events, as evstore's subscriber receives stored
events). Its ``ListenNotifySubscription`` runs a pull thread that selects up to 500
notifications after the last one it saw whenever it is woken, and hands them through a
queue to the iterating thread.

* PostgreSQL: ``PostgresApplicationRecorder.subscribe`` — the pull thread is woken by a
  second thread that LISTENs on a pooled connection; every ``insert_events`` sends a
  NOTIFY in its transaction.
* SQLite: ``SQLiteApplicationRecorder.subscribe`` raises NotImplementedError in 9.5.6. The
  stand-in measured instead is the library's own machinery as its in-memory (POPO)
  recorder uses it: the same ``ListenNotifySubscription`` pull thread over the SQLite
  recorder, woken in-process by the recorder after each committed insert (evstore's
  SQLite backend wakes its subscriptions the same way). The recorder is configured
  through the library's ``APPLICATION_RECORDER_TOPIC`` setting.
* memory: ``POPOApplicationRecorder.subscribe``, the library's own.

Writers and the subscriber are threads (the library's drivers are blocking).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from eventsourcing.persistence import (
    ApplicationRecorder,
    ListenNotifySubscription,
    StoredEvent,
    Subscription,
)
from eventsourcing.popo import POPOApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteFactory
from eventsourcing.utils import Environment, get_topic

from evstore.bench._data import EVENT_TYPE, PAYLOAD_BYTES
from evstore.bench.subscription_common import (
    AppendLog,
    LiveFigures,
    LiveWindow,
    Pacer,
    Tally,
    sent_of,
    timed_payload,
)

__all__ = [
    "NotifyingSQLiteRecorder",
    "PeerRecorder",
    "catch_up",
    "fill",
    "live",
    "open_memory",
    "open_sqlite",
]

TOPIC = f"bench:{EVENT_TYPE}"
FILL_CHUNK = 1000


@dataclass
class PeerRecorder:
    """An opened application recorder and how to close it; ``mechanism`` names the
    subscription measured, for the tables."""

    recorder: ApplicationRecorder
    close: Callable[[], None]
    mechanism: str


class NotifyingSQLiteRecorder(SQLiteApplicationRecorder):
    """eventsourcing's SQLite application recorder with the subscription its in-memory
    recorder has: listeners (threading events) set after every committed insert."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listeners: set[threading.Event] = set()

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super().insert_events(stored_events, **kwargs)  # committed when it returns
        for listener in list(self._listeners):
            listener.set()
        return ids

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return _SQLiteSubscription(self, gt=gt, topics=topics)

    def listen(self, event: threading.Event) -> None:
        self._listeners.add(event)

    def unlisten(self, event: threading.Event) -> None:
        self._listeners.discard(event)


class _SQLiteSubscription(ListenNotifySubscription[NotifyingSQLiteRecorder]):
    """The library's pull-thread subscription, woken by the recorder's listeners."""

    def __init__(
        self, recorder: NotifyingSQLiteRecorder, gt: int | None, topics: Sequence[str]
    ) -> None:
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        recorder.listen(self._has_been_notified)

    def stop(self) -> None:
        super().stop()
        self._recorder.unlisten(self._has_been_notified)


def open_sqlite(path: str) -> PeerRecorder:
    """The SQLite recorder (library defaults: WAL, its connection pool) with the stand-in
    subscription, on the file ``path``."""
    env = {
        "SQLITE_DBNAME": path,
        "APPLICATION_RECORDER_TOPIC": get_topic(NotifyingSQLiteRecorder),
    }
    factory = SQLiteFactory(Environment(env=env))
    return PeerRecorder(
        factory.application_recorder(),
        factory.close,
        "ListenNotifySubscription, in-process wake-up (stand-in)",
    )


def open_memory() -> PeerRecorder:
    """The in-memory (POPO) recorder and its own subscription."""
    return PeerRecorder(POPOApplicationRecorder(), lambda: None, "POPOSubscription")


def fill(recorder: ApplicationRecorder, streams: int, per_stream: int) -> None:
    """Append ``streams * per_stream`` events, ``FILL_CHUNK`` per insert (setup, untimed)."""
    for _ in range(streams):
        originator = uuid.uuid4()
        for first in range(1, per_stream + 1, FILL_CHUNK):
            count = min(FILL_CHUNK, per_stream - first + 1)
            recorder.insert_events(
                [
                    StoredEvent(originator, v, TOPIC, PAYLOAD_BYTES)
                    for v in range(first, first + count)
                ]
            )


def _writer(recorder: ApplicationRecorder, pacer: Pacer, log: AppendLog) -> None:
    """One lane (a thread): its own originator, the next free slot each time."""
    clock = time.perf_counter
    originator = uuid.uuid4()
    version = 0
    while (due := pacer.take()) is not None:
        delay = due - clock()
        if delay > 0:
            time.sleep(delay)
        sent = clock()
        version += 1
        state = orjson.dumps(timed_payload(sent))
        recorder.insert_events([StoredEvent(originator, version, TOPIC, state)])
        log.record(due, sent, clock())


def live(
    recorder: ApplicationRecorder,
    *,
    lanes: int,
    warmup: float,
    seconds: float,
    rate: float,
    drain: float = 30.0,
) -> LiveFigures:
    """S1 on the peer: subscribe after the current end, write at ``rate`` from ``lanes``
    threads, and wait until the subscriber thread held every event (or ``drain`` passed).
    The subscriber decodes each notification's JSON for its send time (evstore hands out
    decoded payloads)."""
    failures: list[BaseException] = []
    cpu = time.process_time()
    sub = recorder.subscribe(gt=recorder.max_notification_id())
    sub.__enter__()
    window = LiveWindow(time.perf_counter() + 0.05, warmup, seconds, rate)
    tally, log = Tally(), AppendLog()

    def consume() -> None:
        clock = time.perf_counter
        measure_from = window.measure_from
        arrivals = tally.arrivals
        try:
            for notification in sub:
                now = clock()
                sent = sent_of(notification.state)
                if sent >= measure_from:
                    arrivals.append((sent, now))
                tally.add(1)
                if tally.finished.is_set():
                    return
        except BaseException as exc:  # reported by the caller
            failures.append(exc)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    try:
        pacer = Pacer(window)
        writers = [
            threading.Thread(target=_writer, args=(recorder, pacer, log), daemon=True)
            for _ in range(lanes)
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        tally.expect(len(log.appends))
        tally.finished.wait(drain)
        cpu = time.process_time() - cpu
    finally:
        sub.__exit__(None, None, None)  # stops it and joins its threads
        consumer.join(timeout=10)
    if failures:
        raise failures[0]
    return LiveFigures.of(window, log, tally, cpu)


def catch_up(
    recorder: ApplicationRecorder, total: int, timeout: float = 600.0
) -> tuple[int, float]:
    """S2 on the peer: a new subscription from the origin reads ``total`` notifications;
    (notifications read, seconds from the subscribe call to the last one). Stopped after
    ``timeout`` seconds, so a short log ends the cell instead of blocking it."""
    began = time.perf_counter()
    count = 0
    with recorder.subscribe(gt=None) as sub:
        watchdog = threading.Timer(timeout, sub.stop)
        watchdog.daemon = True
        watchdog.start()
        try:
            for _notification in sub:
                count += 1
                if count >= total:
                    break
            elapsed = time.perf_counter() - began
        finally:
            watchdog.cancel()
    return count, elapsed
