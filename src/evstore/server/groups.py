"""Persistent-subscription groups: their KurrentDB settings, checks, durable storage, and
their mapping onto evstore's persistent-subscription engine.

A group is identified by ``"<stream>::<group>"`` (``"$all::<group>"`` for ``$all``). Its
configuration lives in the store itself, as JSON events of type ``$PersistentConfig`` in the
system stream ``$persistentSubscriptionConfig`` (KurrentDB keeps its configuration in the
same stream): every event holds the whole configuration, the latest event wins, and each
change is appended with the expected version of the configuration it was derived from, so
two server processes on the same database never lose each other's changes. The engine's
checkpoint and parked events are the store's own subscription row for (stream, group).

KurrentDB start positions of persistent subscriptions are *inclusive*, evstore's
``start_from`` is *exclusive* (it delivers event numbers above it):

- a stream revision ``r`` (0-based) is evstore version ``r + 1``, so ``start_from = r``;
- a ``$all`` position ``P`` is evstore global position ``P``, so ``start_from = P - 1``;
- ``start`` is ``0``; ``end`` is resolved once, when the group is created or updated, to
  the stream's current version (``$all``: the highest position), so events appended after
  ``Create`` returns are delivered even if no consumer connects until later.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from evstore._store import AsyncEventStore
from evstore._types import ALL_STREAM, EventData, RecordedEvent
from evstore.errors import StreamDeletedError, StreamNotFoundError, WrongExpectedVersionError
from evstore.subscriptions._options import PersistentOptions, Strategy

__all__ = [
    "CLOCK_TICK",
    "CONFIG_EVENT_TYPE",
    "CONFIG_STREAM",
    "CONSUMER_STRATEGIES",
    "DEFAULT_STRATEGY",
    "UNLIMITED_SUBSCRIBERS",
    "EventFilter",
    "Group",
    "GroupConfigStore",
    "GroupError",
    "GroupExistsError",
    "GroupFailedError",
    "GroupInvalidError",
    "GroupNotFoundError",
    "GroupSettings",
    "StartPosition",
    "check_start",
    "ms_from",
    "resolve_start",
]

CONFIG_STREAM = "$persistentSubscriptionConfig"
CONFIG_EVENT_TYPE = "$PersistentConfig"

CONSUMER_STRATEGIES: Mapping[str, Strategy] = {
    "DispatchToSingle": "dispatch_to_single",
    "RoundRobin": "round_robin",
    "Pinned": "pinned",
    "PinnedByCorrelation": "pinned_by_correlation",
}
"""KurrentDB consumer strategy names and the engine strategies that implement them."""

DEFAULT_STRATEGY = "RoundRobin"
"""KurrentDB's default when a request names none."""

UNLIMITED_SUBSCRIBERS = 1_000_000
"""The engine's ``concurrency_limit`` for ``max_subscriber_count`` 0 (KurrentDB: unlimited)."""

CLOCK_TICK = 1.0
"""Seconds between KurrentDB's persistent-subscription clock ticks (timeouts are seen then)."""

_TICKS_PER_MS = 10_000
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
# How often a configuration change is retried after losing a race with another process.
_WRITE_ATTEMPTS = 20


class GroupError(Exception):
    """Base of the group errors; ``reason`` is the text KurrentDB would report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GroupFailedError(GroupError):
    """Settings KurrentDB refuses (its ``Fail`` result: INTERNAL "... failed: '<reason>'")."""


class GroupInvalidError(GroupError):
    """A malformed or out-of-range request (INVALID_ARGUMENT)."""


class GroupExistsError(GroupError):
    """The group already exists."""


class GroupNotFoundError(GroupError):
    """The group does not exist."""


@dataclass(frozen=True, slots=True)
class GroupSettings:
    """The KurrentDB settings of a group (units as KurrentDB's GetInfo reports them).

    ``message_timeout_ms`` 0 disables message timeouts; ``checkpoint_after_ms`` 0 disables
    time-based checkpoints; ``max_subscriber_count`` 0 means no limit.
    """

    resolve_links: bool = False
    extra_statistics: bool = False
    max_retry_count: int = 10
    min_checkpoint_count: int = 10
    max_checkpoint_count: int = 1000
    max_subscriber_count: int = 0
    live_buffer_size: int = 500
    read_batch_size: int = 20
    history_buffer_size: int = 500
    consumer_strategy: str = DEFAULT_STRATEGY
    message_timeout_ms: int = 30_000
    checkpoint_after_ms: int = 2_000

    def check(self) -> None:
        """Refuse what KurrentDB refuses, in its order, and what the engine cannot run.

        Raises:
            GroupInvalidError: a negative count, size or duration.
            GroupFailedError: an unknown consumer strategy, or ``read_batch_size`` not
                below ``history_buffer_size`` (KurrentDB's messages).
        """
        for name in (
            "max_retry_count",
            "min_checkpoint_count",
            "max_checkpoint_count",
            "max_subscriber_count",
            "live_buffer_size",
            "read_batch_size",
            "history_buffer_size",
            "message_timeout_ms",
            "checkpoint_after_ms",
        ):
            value = getattr(self, name)
            if value < 0:
                raise GroupInvalidError(f"{name} must not be negative, got {value}")
        if self.consumer_strategy not in CONSUMER_STRATEGIES:
            raise GroupFailedError(f"Consumer strategy {self.consumer_strategy} does not exist.")

    def check_buffers(self) -> None:
        """KurrentDB's constructor check, made after the existence check.

        Raises:
            GroupFailedError: ``read_batch_size >= history_buffer_size``.
        """
        if self.read_batch_size >= self.history_buffer_size:
            # The text of .NET's ArgumentOutOfRangeException(paramName) that KurrentDB raises.
            raise GroupFailedError(
                "Specified argument was out of the range of valid values. "
                "(Parameter 'ReadBatchSize may not be greater than or equal to BufferSize')"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "resolveLinkTos": self.resolve_links,
            "extraStatistics": self.extra_statistics,
            "maxRetryCount": self.max_retry_count,
            "minCheckPointCount": self.min_checkpoint_count,
            "maxCheckPointCount": self.max_checkpoint_count,
            "maxSubscriberCount": self.max_subscriber_count,
            "liveBufferSize": self.live_buffer_size,
            "readBatchSize": self.read_batch_size,
            "historyBufferSize": self.history_buffer_size,
            "namedConsumerStrategy": self.consumer_strategy,
            "messageTimeout": self.message_timeout_ms,
            "checkPointAfter": self.checkpoint_after_ms,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GroupSettings:
        return cls(
            resolve_links=bool(data["resolveLinkTos"]),
            extra_statistics=bool(data["extraStatistics"]),
            max_retry_count=int(data["maxRetryCount"]),
            min_checkpoint_count=int(data["minCheckPointCount"]),
            max_checkpoint_count=int(data["maxCheckPointCount"]),
            max_subscriber_count=int(data["maxSubscriberCount"]),
            live_buffer_size=int(data["liveBufferSize"]),
            read_batch_size=int(data["readBatchSize"]),
            history_buffer_size=int(data["historyBufferSize"]),
            consumer_strategy=str(data["namedConsumerStrategy"]),
            message_timeout_ms=int(data["messageTimeout"]),
            checkpoint_after_ms=int(data["checkPointAfter"]),
        )


def ms_from(ms: int | None, ticks: int | None) -> int:
    """Milliseconds from a request's ``*_ms`` or ``*_ticks`` (100 ns) alternative; 0 when
    neither is set (KurrentDB truncates ticks to whole milliseconds)."""
    if ms is not None:
        return ms
    if ticks is not None:
        return int(ticks / _TICKS_PER_MS) if ticks >= 0 else -int(-ticks / _TICKS_PER_MS)
    return 0


@dataclass(frozen=True, slots=True)
class StartPosition:
    """Where a group starts, as the client asked for it.

    ``kind`` is ``"start"``, ``"end"``, ``"revision"`` (stream groups: ``commit`` holds the
    revision) or ``"position"`` (``$all`` groups: ``commit``/``prepare``).
    """

    kind: Literal["start", "end", "revision", "position"]
    commit: int = 0
    prepare: int = 0

    def text(self, all_streams: bool) -> str:
        """The ``start_from`` text of GetInfo (``kurrentdbclient`` parses it on update)."""
        if all_streams:
            if self.kind == "end":
                return "C:-1/P:-1"
            if self.kind == "position":
                return f"C:{self.commit}/P:{self.prepare}"
            return "C:0/P:0"
        if self.kind == "end":
            return "-1"
        if self.kind == "revision":
            return str(self.commit)
        return "0"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "commit": self.commit, "prepare": self.prepare}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StartPosition:
        kind = data["kind"]
        if kind not in ("start", "end", "revision", "position"):
            raise ValueError(f"unknown start kind {kind!r}")
        return cls(kind, int(data.get("commit", 0)), int(data.get("prepare", 0)))


@dataclass(frozen=True, slots=True)
class EventFilter:
    """The server-side filter of a ``$all`` group: a regex or prefixes, on the stream name
    or on the event type. KurrentDB matches the regex anywhere in the text (``re.search``)
    and a prefix with ``startswith``."""

    on: Literal["stream", "event_type"]
    regex: str = ""
    prefixes: tuple[str, ...] = ()
    _compiled: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def create(
        cls, on: Literal["stream", "event_type"], regex: str, prefixes: tuple[str, ...]
    ) -> EventFilter:
        """A checked filter.

        Raises:
            GroupInvalidError: the regex does not compile, or neither a regex nor a prefix
                was given.
        """
        compiled = None
        if regex:
            try:
                compiled = re.compile(regex)
            except re.error as exc:
                raise GroupInvalidError(f"invalid filter regex {regex!r}: {exc}") from None
        elif not prefixes:
            raise GroupInvalidError("a filter needs a regex or at least one prefix")
        return cls(on, regex, prefixes, compiled)

    def matches(self, event: RecordedEvent) -> bool:
        """True when the event passes the filter (is delivered)."""
        text = event.stream_id if self.on == "stream" else event.event_type
        if self._compiled is not None:
            return self._compiled.search(text) is not None
        return text.startswith(self.prefixes)

    def to_json(self) -> dict[str, Any]:
        return {"on": self.on, "regex": self.regex, "prefixes": list(self.prefixes)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EventFilter:
        on = data["on"]
        if on not in ("stream", "event_type"):
            raise ValueError(f"unknown filter target {on!r}")
        return cls.create(on, str(data.get("regex", "")), tuple(data.get("prefixes", ())))


@dataclass(frozen=True, slots=True)
class Group:
    """One persistent-subscription group.

    Attributes:
        stream: the stream, or ``"$all"``.
        name: the group name.
        settings: its KurrentDB settings.
        start: where it starts, as requested (GetInfo's ``start_from``).
        start_from: the evstore ``start_from`` the start resolved to (exclusive).
        filter: the ``$all`` filter, if any.
    """

    stream: str
    name: str
    settings: GroupSettings
    start: StartPosition
    start_from: int
    filter: EventFilter | None = None

    @property
    def key(self) -> str:
        """``"<stream>::<group>"``: the group's id and its consumers' subscription id."""
        return f"{self.stream}::{self.name}"

    @property
    def all_streams(self) -> bool:
        return self.stream == ALL_STREAM

    @property
    def start_from_text(self) -> str:
        return self.start.text(self.all_streams)

    def engine_options(self) -> PersistentOptions:
        """The evstore engine options that run this group (``buffer_size`` and
        ``subscriber`` are per consumer and added by the caller)."""
        s = self.settings
        options: PersistentOptions = {
            "start_from": self.start_from,
            "concurrency_limit": s.max_subscriber_count or UNLIMITED_SUBSCRIBERS,
            "strategy": CONSUMER_STRATEGIES[s.consumer_strategy],
            # KurrentDB looks for timed-out messages on its 1 s clock tick, so a shorter
            # timeout never retries sooner than that (and a client's batched acks, sent
            # every 0.2 s, arrive in time); the engine checks exactly, hence the floor.
            "message_timeout": (
                max(s.message_timeout_ms / 1000, CLOCK_TICK) if s.message_timeout_ms else None
            ),
            "max_retry_count": s.max_retry_count,
            # KurrentDB writes a checkpoint once min_checkpoint_count events are handled and
            # checkpoint_after has passed; the engine writes at the count, or after
            # checkpoint_after without reaching it: never later than KurrentDB would.
            "checkpoint_threshold": max(1, min(s.min_checkpoint_count, s.max_checkpoint_count)),
            "checkpoint_after": s.checkpoint_after_ms / 1000,
            "max_size": max(1, s.history_buffer_size, s.live_buffer_size),
        }
        if self.filter is not None:
            options["selector"] = self.filter.matches
        return options

    def to_json(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "group": self.name,
            "settings": self.settings.to_json(),
            "start": self.start.to_json(),
            "startFrom": self.start_from,
            "filter": None if self.filter is None else self.filter.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Group:
        raw_filter = data.get("filter")
        return cls(
            stream=str(data["stream"]),
            name=str(data["group"]),
            settings=GroupSettings.from_json(data["settings"]),
            start=StartPosition.from_json(data["start"]),
            start_from=int(data["startFrom"]),
            filter=None if raw_filter is None else EventFilter.from_json(raw_filter),
        )


async def _head(store: AsyncEventStore, stream: str) -> int:
    """The stream's version (``$all``: its highest position); 0 when it has no events."""
    try:
        info = await store.stream_info(stream)
    except (StreamNotFoundError, StreamDeletedError):
        return 0
    return info.stream_version


async def resolve_start(store: AsyncEventStore, stream: str, start: StartPosition) -> int:
    """The evstore ``start_from`` (exclusive) of a KurrentDB start position (inclusive).

    Raises:
        GroupFailedError: a ``$all`` position KurrentDB refuses (prepare above commit, or
            commit beyond the last position), with KurrentDB's message.
    """
    if start.kind == "start":
        return 0
    if start.kind == "end":
        return await _head(store, stream)
    if start.kind == "revision":
        return start.commit
    if start.prepare > start.commit:
        raise GroupFailedError(
            "Invalid Start From position: prepare position must be less than or equal to "
            "the commit position."
        )
    if start.commit > await _head(store, ALL_STREAM):
        raise GroupFailedError(
            "Invalid Start From position: commit position must be less than or equal to the "
            "last commit position in the transaction file."
        )
    return max(start.commit - 1, 0)


def check_start(stream: str, start: StartPosition) -> None:
    """Refuse start positions that cannot be represented.

    Raises:
        GroupFailedError: a revision beyond a 64-bit signed integer (KurrentDB's message).
    """
    if stream != ALL_STREAM and start.kind == "revision" and start.commit > _INT64_MAX:
        raise GroupFailedError(
            "Invalid Start From position: event number must be greater than or equal to -1."
        )
    if start.kind == "position" and max(start.commit, start.prepare) > _INT64_MAX:
        raise GroupFailedError(
            "Invalid Start From position: commit position must be less than or equal to the "
            "last commit position in the transaction file."
        )


Key = tuple[str, str]


def _decode(event: RecordedEvent) -> dict[Key, Group]:
    data = event.data
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = json.loads(bytes(data))
    groups: dict[Key, Group] = {}
    for entry in data.get("entries", ()):
        group = Group.from_json(entry)
        groups[(group.stream, group.name)] = group
    return groups


class GroupConfigStore:
    """The groups of one store, read from and written to ``$persistentSubscriptionConfig``.

    Every read goes to the database (one event, read backwards), so all server processes
    on the same database see one configuration.
    """

    def __init__(self, store: AsyncEventStore, *, updated_by: str = "admin") -> None:
        self._store = store
        self._updated_by = updated_by

    async def load(self) -> tuple[int, dict[Key, Group]]:
        """The configuration's stream version (0: none yet) and its groups."""
        try:
            events = await self._store.read_stream_backward(CONFIG_STREAM, -1, 1)
        except StreamNotFoundError:
            return 0, {}
        if not events:
            return 0, {}
        last = events[0]
        return last.event_number, _decode(last)

    async def get(self, stream: str, name: str) -> Group | None:
        """The group, or ``None``."""
        _, groups = await self.load()
        return groups.get((stream, name))

    async def list(self, stream: str | None = None) -> list[Group]:
        """Every group (of ``stream`` when given), in creation order."""
        _, groups = await self.load()
        return [g for g in groups.values() if stream is None or g.stream == stream]

    async def _change(
        self, change: Callable[[dict[Key, Group]], Awaitable[dict[Key, Group]]]
    ) -> None:
        """Apply ``change`` to the latest configuration and append the result, again on
        a fresh copy when another writer appended first."""
        for _ in range(_WRITE_ATTEMPTS):
            version, groups = await self.load()
            updated = await change(dict(groups))
            document = {
                "version": 2,
                "updated": datetime.now(UTC).isoformat(),
                "updatedBy": self._updated_by,
                "maxCount": 10,
                "entries": [g.to_json() for g in updated.values()],
            }
            payload = json.dumps(document, separators=(",", ":")).encode()
            try:
                await self._store.append_to_stream(
                    CONFIG_STREAM, version, [EventData(CONFIG_EVENT_TYPE, payload)]
                )
                return
            except WrongExpectedVersionError:
                continue
        raise GroupFailedError("the configuration changed concurrently too often; try again")

    async def create(self, group: Group, check: Callable[[], None] | None = None) -> None:
        """Add a group; ``check()`` (if given) runs once the group is known not to exist,
        and may refuse it by raising.

        Raises:
            GroupExistsError, or whatever ``check`` raises.
        """

        async def change(groups: dict[Key, Group]) -> dict[Key, Group]:
            if (group.stream, group.name) in groups:
                raise GroupExistsError(f"Group '{group.name}' already exists.")
            if check is not None:
                check()
            groups[(group.stream, group.name)] = group
            return groups

        await self._change(change)

    async def update(
        self, stream: str, name: str, prepare: Callable[[Group], Awaitable[Group]]
    ) -> tuple[Group, Group]:
        """Replace a group by ``await prepare(current)``; return the old and new group.

        Raises:
            GroupNotFoundError, or whatever ``prepare`` raises.
        """
        updated: list[Group] = []

        async def change(groups: dict[Key, Group]) -> dict[Key, Group]:
            current = groups.get((stream, name))
            if current is None:
                raise GroupNotFoundError(f"Group '{name}' does not exist.")
            new = await prepare(current)
            updated[:] = [current, new]
            groups[(stream, name)] = new
            return groups

        await self._change(change)
        return updated[0], updated[1]

    async def delete(self, stream: str, name: str) -> Group:
        """Remove a group and return it.

        Raises:
            GroupNotFoundError.
        """
        deleted: list[Group] = []

        async def change(groups: dict[Key, Group]) -> dict[Key, Group]:
            current = groups.pop((stream, name), None)
            if current is None:
                raise GroupNotFoundError(f"Group '{name}' does not exist.")
            deleted[:] = [current]
            return groups

        await self._change(change)
        return deleted[0]
