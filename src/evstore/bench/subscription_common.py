"""What the subscription benchmarks (S1, S2) share across systems: the timed payload, the
paced writer's schedule, and the figures one live cell produces.

S1 measures append-to-delivery latency: every event carries the writer's
``time.perf_counter()`` taken just before its append call, and the subscriber subtracts it
from its own clock the moment it holds the event. Writer and subscriber run in one process,
so the two clocks are the same clock.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from evstore.bench._data import PAYLOAD
from evstore.bench._timing import percentile

__all__ = [
    "AppendLog",
    "LiveFigures",
    "LiveWindow",
    "Pacer",
    "Tally",
    "sent_of",
    "timed_payload",
]

_BASE = {key: value for key, value in PAYLOAD.items() if key != "total"}


def timed_payload(sent: float) -> dict[str, Any]:
    """The suite's payload with its ``total`` replaced by the send time: about 110 bytes of
    JSON, so S1's events are the same size as every other workload's."""
    payload = dict(_BASE)
    payload["sent"] = sent
    return payload


def sent_of(state: bytes) -> float:
    """The send time inside an encoded :func:`timed_payload` (the peer hands out bytes)."""
    value: float = orjson.loads(state)["sent"]
    return value


@dataclass(frozen=True)
class LiveWindow:
    """When a live cell writes: ``warmup`` seconds, then ``seconds`` measured, at ``rate``
    appends/s; an append whose slot is still pending ``grace`` seconds after the window
    closed is dropped (a system that cannot keep up shows it in its achieved rate)."""

    start: float
    warmup: float
    seconds: float
    rate: float

    @property
    def measure_from(self) -> float:
        return self.start + self.warmup

    @property
    def end(self) -> float:
        return self.start + self.warmup + self.seconds

    @property
    def grace(self) -> float:
        return max(self.seconds, 2.0)


class Pacer:
    """The writer's schedule: one append every ``1 / rate`` seconds from ``window.start``,
    shared by every writer lane (threads or tasks). A lane takes the next slot when it is
    free; an open-loop schedule, so a slow append delays only its own lane while the others
    keep to the timetable."""

    def __init__(self, window: LiveWindow) -> None:
        self._window = window
        self._interval = 1.0 / window.rate
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> float | None:
        """The due time of the next slot, or None once the schedule is over."""
        window = self._window
        with self._lock:
            due = window.start + self._next * self._interval
            if due >= window.end or time.perf_counter() > window.end + window.grace:
                return None
            self._next += 1
            return due


@dataclass
class AppendLog:
    """Every append of a live cell: when it was due, when it started, when it returned."""

    appends: list[tuple[float, float, float]] = field(default_factory=list)

    def record(self, due: float, sent: float, done: float) -> None:
        # list.append is atomic under the GIL: writer threads share one log without a lock.
        self.appends.append((due, sent, done))


class Tally:
    """What the subscriber counted, shared with the writer side: the writer announces how
    many events it appended once it stopped, and :meth:`finished` fires when the
    subscriber has held that many. Thread-safe (the peer's subscriber is a thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.delivered = 0
        self.expected: int | None = None
        self.arrivals: list[tuple[float, float]] = []
        """(send time, time held) of every event sent in the measured window."""
        self.finished = threading.Event()

    def add(self, count: int) -> None:
        with self._lock:
            self.delivered += count
            if self.expected is not None and self.delivered >= self.expected:
                self.finished.set()

    def expect(self, count: int) -> None:
        with self._lock:
            self.expected = count
            if self.delivered >= count:
                self.finished.set()


@dataclass(frozen=True)
class LiveFigures:
    """One S1 cell's figures (milliseconds, appends/s)."""

    appended: int
    delivered: int
    measured_events: int
    measured_seconds: float
    append_rate: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    append_p50_ms: float
    append_p99_ms: float
    after_append_p50_ms: float
    after_append_p99_ms: float
    start_lag_max_ms: float
    cpu_us_per_event: float
    """This process's CPU time (every thread) over the whole cell, per event appended:
    the writer's and the subscriber's client-side work together."""

    @classmethod
    def of(
        cls, window: LiveWindow, log: AppendLog, tally: Tally, cpu_seconds: float
    ) -> LiveFigures:
        """The figures of a finished cell: the latencies of events sent in the measured
        window; the appends due in it and how long they took to finish."""
        # The appends due in the measured window (a lane that fell behind during the
        # warm-up does not inflate the rate by catching up in the window).
        measured = [a for a in log.appends if a[0] >= window.measure_from]
        last_done = max((a[2] for a in measured), default=window.end)
        seconds = max(last_done - window.measure_from, 1e-9)
        latencies = [held - sent for sent, held in tally.arrivals]
        append_latencies = [done - sent for _due, sent, done in measured]
        lag = max((sent - due for due, sent, _done in measured), default=0.0)
        # How long after its append call returned the subscriber held each event: the
        # delivery path alone (negative when delivery beat the appender's wake-up).
        returned = {sent: done for _due, sent, done in log.appends}
        after = [held - returned[sent] for sent, held in tally.arrivals if sent in returned]
        return cls(
            appended=len(log.appends),
            delivered=tally.delivered,
            measured_events=len(latencies),
            measured_seconds=round(seconds, 3),
            append_rate=round(len(measured) / seconds, 1),
            p50_ms=round(percentile(latencies, 0.50) * 1000, 3),
            p99_ms=round(percentile(latencies, 0.99) * 1000, 3),
            max_ms=round(max(latencies, default=0.0) * 1000, 3),
            append_p50_ms=round(percentile(append_latencies, 0.50) * 1000, 3),
            append_p99_ms=round(percentile(append_latencies, 0.99) * 1000, 3),
            after_append_p50_ms=round(percentile(after, 0.50) * 1000, 3),
            after_append_p99_ms=round(percentile(after, 0.99) * 1000, 3),
            start_lag_max_ms=round(lag * 1000, 3),
            cpu_us_per_event=round(cpu_seconds / max(len(log.appends), 1) * 1e6, 1),
        )
