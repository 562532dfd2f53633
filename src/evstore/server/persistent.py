"""The ``PersistentSubscriptions`` gRPC service: KurrentDB's competing consumers over
evstore's persistent-subscription engine.

Each group (see :mod:`evstore.server.groups`) runs as the store's persistent subscription
named after the group on the group's stream (``"$all"`` for ``$all`` groups), with
``concurrency_limit = max_subscriber_count``; each ``Read`` call is one subscriber of it,
with its own identity and the ``buffer_size`` the client asked for. The engine keeps the
checkpoint, retries, parking and parked replays in the store, so a group resumes after a
restart, and only one process of those sharing a database delivers a group at a time.

KurrentDB's consumers acknowledge events one by one, by event id. The engine's ``ack`` is
cumulative (it acknowledges every earlier event in flight too), so a KurrentDB ack is
given to the engine as a ``skip`` nack of exactly the events named: handled, and never
delivered again. Each consumer maps the ids it was sent to event numbers.

The groups run in a subscription registry of this service rather than the store's: its
reads hand the engine the stored rows (as the ``data`` of the events it delivers) instead of
decoded events, so a consumer receives exactly the bytes a client appended, converted by
the same :class:`~evstore.server.convert.EventEncoder` as ``Streams.Read``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, cast
from uuid import UUID

import grpc
from grpc import aio

from evstore._checks import check_text
from evstore._store import AsyncEventStore
from evstore._types import ALL_STREAM, RecordedEvent, recorded_event
from evstore._validation import MAX_STREAM_ID_LENGTH
from evstore.backends.base import EventRow
from evstore.errors import (
    InvalidArgumentError,
    StreamDeletedError,
    StreamNotFoundError,
    SubscriptionError,
    TooManySubscribersError,
)
from evstore.serialization import JsonSerializer
from evstore.server._generated import persistent_pb2 as pb
from evstore.server._generated import persistent_pb2_grpc as pb_grpc
from evstore.server._generated import shared_pb2
from evstore.server.convert import EventEncoder, uuid_from_message
from evstore.server.dialect import BadRequest
from evstore.server.groups import (
    EventFilter,
    Group,
    GroupConfigStore,
    GroupExistsError,
    GroupFailedError,
    GroupInvalidError,
    GroupNotFoundError,
    GroupSettings,
    StartPosition,
    check_start,
    ms_from,
    resolve_start,
)
from evstore.subscriptions import Subscription, SubscriptionInfo
from evstore.subscriptions._options import NackAction, SubscriptionOptions
from evstore.subscriptions._registry import SubscriptionRegistry

__all__ = [
    "Failure",
    "PersistentSubscriptionsServicer",
    "already_exists",
    "does_not_exist",
    "dropped",
    "failed",
    "invalid",
    "maximum_subscribers",
]

log = logging.getLogger("evstore.server.persistent")

MAX_GROUP_NAME_LENGTH = 1024
# How often (seconds) a delivering consumer refreshes its group's lag gauge.
_LAG_INTERVAL = 1.0
# How often (seconds) the configuration is read again while consumers are connected, so
# that an Update or Delete made through another server process drops them here too.
_CONFIG_POLL = 2.0

Context = aio.ServicerContext[Any, Any]

# KurrentDB's nack actions and what the engine does for them (Stop is a no-op in KurrentDB).
_NACK_ACTIONS: dict[int, NackAction | None] = {
    pb.ReadReq.Nack.Unknown: "retry",
    pb.ReadReq.Nack.Retry: "retry",
    pb.ReadReq.Nack.Park: "park",
    pb.ReadReq.Nack.Skip: "skip",
    pb.ReadReq.Nack.Stop: None,
}


# -- errors ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    """A status to end a call with: code, message and ``exception`` trailers."""

    code: grpc.StatusCode
    details: str
    trailers: tuple[tuple[str, str], ...] = ()


class _Abort(Exception):
    """Raised inside the service to end the call with ``failure``."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.details)
        self.failure = failure


def _group_trailers(exception: str, stream: str, group: str) -> tuple[tuple[str, str], ...]:
    return (("exception", exception), ("stream-name", stream), ("group-name", group))


def does_not_exist(stream: str, group: str) -> Failure:
    """NOT_FOUND: the group does not exist."""
    return Failure(
        grpc.StatusCode.NOT_FOUND,
        f"Subscription group {group} on stream {stream} does not exist.",
        _group_trailers("persistent-subscription-does-not-exist", stream, group),
    )


def already_exists(stream: str, group: str) -> Failure:
    """ALREADY_EXISTS: Create of an existing group."""
    return Failure(
        grpc.StatusCode.ALREADY_EXISTS,
        f"Subscription group {group} on stream {stream} exists.",
        _group_trailers("persistent-subscription-exists", stream, group),
    )


def failed(stream: str, group: str, reason: str) -> Failure:
    """INTERNAL: settings KurrentDB refuses."""
    return Failure(
        grpc.StatusCode.INTERNAL,
        f"Subscription group {group} on stream {stream} failed: '{reason}'",
        (*_group_trailers("persistent-subscription-failed", stream, group), ("reason", reason)),
    )


def maximum_subscribers(stream: str, group: str) -> Failure:
    """FAILED_PRECONDITION: the group has ``max_subscriber_count`` consumers already."""
    return Failure(
        grpc.StatusCode.FAILED_PRECONDITION,
        f"Maximum subscriptions reached for subscription group {group} on stream {stream}.",
        _group_trailers("maximum-subscribers-reached", stream, group),
    )


def dropped(stream: str, group: str) -> Failure:
    """CANCELLED: the server dropped the consumer (group updated or deleted)."""
    return Failure(
        grpc.StatusCode.CANCELLED,
        f"Subscription group {group} on stream {stream} was dropped.",
        _group_trailers("persistent-subscription-dropped", stream, group),
    )


def invalid(details: str) -> Failure:
    """INVALID_ARGUMENT: a malformed request."""
    return Failure(grpc.StatusCode.INVALID_ARGUMENT, details)


async def _abort(context: Context, failure: Failure) -> NoReturn:
    await context.abort(failure.code, failure.details, failure.trailers)
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


# -- request parsing ------------------------------------------------------------------------


def _stream_name(identifier: shared_pb2.StreamIdentifier) -> str:
    try:
        return identifier.stream_name.decode("utf-8")
    except UnicodeDecodeError:
        raise _Abort(invalid("The stream name is not valid UTF-8.")) from None


def _checked_stream(stream: str) -> str:
    try:
        return check_text(stream, "stream_name", max_length=MAX_STREAM_ID_LENGTH)
    except InvalidArgumentError as exc:
        raise _Abort(invalid(str(exc))) from None


def _checked_group(name: str) -> str:
    try:
        return check_text(name, "group_name", max_length=MAX_GROUP_NAME_LENGTH)
    except InvalidArgumentError as exc:
        raise _Abort(invalid(str(exc))) from None


def _source(message: Any, stream_field: str = "stream_identifier") -> str:
    """``"$all"`` or the stream named by a request's ``stream_option`` oneof."""
    which = message.WhichOneof("stream_option")
    if which == "all":
        return ALL_STREAM
    if which == stream_field:
        return _checked_stream(_stream_name(getattr(message, stream_field)))
    raise _Abort(invalid("The request names neither a stream nor $all."))


def _uuid(value: shared_pb2.UUID) -> UUID:
    try:
        return uuid_from_message(value)
    except BadRequest as exc:
        raise _Abort(invalid(f"Invalid event id in an ack or nack: {exc}")) from None


def _settings(settings: Any, strategy: str) -> GroupSettings:
    """GroupSettings from a Create/Update request's settings."""
    timeout = settings.WhichOneof("message_timeout")
    checkpoint = settings.WhichOneof("checkpoint_after")
    return GroupSettings(
        resolve_links=settings.resolve_links,
        extra_statistics=settings.extra_statistics,
        max_retry_count=settings.max_retry_count,
        min_checkpoint_count=settings.min_checkpoint_count,
        max_checkpoint_count=settings.max_checkpoint_count,
        max_subscriber_count=settings.max_subscriber_count,
        live_buffer_size=settings.live_buffer_size,
        read_batch_size=settings.read_batch_size,
        history_buffer_size=settings.history_buffer_size,
        consumer_strategy=strategy,
        message_timeout_ms=ms_from(
            settings.message_timeout_ms if timeout == "message_timeout_ms" else None,
            settings.message_timeout_ticks if timeout == "message_timeout_ticks" else None,
        ),
        checkpoint_after_ms=ms_from(
            settings.checkpoint_after_ms if checkpoint == "checkpoint_after_ms" else None,
            settings.checkpoint_after_ticks if checkpoint == "checkpoint_after_ticks" else None,
        ),
    )


def _enum_strategy(enum: Any, value: int) -> str:
    """The name of the deprecated ``named_consumer_strategy`` enum (.NET prints an unknown
    enum value as its number)."""
    try:
        name: str = enum.Name(value)
    except ValueError:
        return str(value)
    return name


def _target(options: Any, *, with_filter: bool) -> tuple[str, StartPosition, EventFilter | None]:
    """Stream, start and filter of a Create/Update request's options."""
    which = options.WhichOneof("stream_option")
    if which == "stream":
        stream_options = options.stream
        stream = _stream_name(stream_options.stream_identifier)
        revision = stream_options.WhichOneof("revision_option")
        if revision == "revision":
            start = StartPosition("revision", stream_options.revision)
        elif revision in ("start", "end"):
            start = StartPosition(revision)
        else:
            raise _Abort(invalid("'None' is not a valid revision option"))
        return stream, start, None
    if which == "all":
        all_options = options.all
        position = all_options.WhichOneof("all_option")
        if position == "position":
            start = StartPosition(
                "position",
                all_options.position.commit_position,
                all_options.position.prepare_position,
            )
        elif position in ("start", "end"):
            start = StartPosition(position)
        else:
            raise _Abort(invalid("'None' is not a valid all option"))
        event_filter = None
        if with_filter and all_options.WhichOneof("filter_option") == "filter":
            event_filter = _filter(all_options.filter)
        return ALL_STREAM, start, event_filter
    # Deprecated form: options.stream_identifier with settings.revision.
    stream = _stream_name(options.stream_identifier)
    return stream, StartPosition("revision", options.settings.revision), None


def _filter(options: Any) -> EventFilter:
    on = options.WhichOneof("filter")
    if on not in ("stream_identifier", "event_type"):
        raise _Abort(invalid("'None' is not a valid filter"))
    expression = getattr(options, on)
    try:
        return EventFilter.create(
            "stream" if on == "stream_identifier" else "event_type",
            expression.regex,
            tuple(expression.prefix),
        )
    except GroupInvalidError as exc:
        raise _Abort(invalid(exc.reason)) from None


def _check_stream_target(stream: str, group: str) -> None:
    """KurrentDB's checks of the stream named by stream options."""
    if not stream:
        raise _Abort(failed(stream, group, "Bad stream name."))
    if stream == ALL_STREAM:
        raise _Abort(
            failed(
                stream,
                group,
                "Persistent subscriptions to $all are only supported over gRPC through gRPC "
                "clients",
            )
        )
    _checked_stream(stream)


# -- consumers -------------------------------------------------------------------------------


class _Consumer:
    """One ``Read`` call: an engine subscriber and the ids it was sent."""

    def __init__(
        self,
        group: Group,
        sub: Subscription,
        buffer_size: int,
        peer: str,
        connection_name: str,
        username: str,
    ) -> None:
        self.group = group
        self.sub = sub
        self.buffer_size = buffer_size
        self.peer = peer
        self.connection_name = connection_name
        self.username = username
        self.ids: dict[UUID, int] = {}
        self.total_items = 0
        self.last_total_items = 0
        self.failure: Failure | None = None

    @property
    def in_flight(self) -> int:
        """Events delivered to this consumer and not handled yet (the engine's count)."""
        consumer = getattr(self.sub, "_consumer", None)
        if consumer is None:  # pragma: no cover - the engine's internals changed
            return len(self.ids)
        return len(consumer.in_flight)

    def numbers(self, ids: Iterable[shared_pb2.UUID]) -> list[int]:
        """The event numbers of the ids this consumer was sent, which it forgets (other
        ids are ignored, as KurrentDB ignores acks of unknown ids).

        Raises:
            _Abort: a malformed id.
        """
        numbers = []
        for value in ids:
            number = self.ids.pop(_uuid(value), None)
            if number is not None:
                numbers.append(number)
        return numbers

    def prune(self) -> None:
        """Forget ids whose events were handled elsewhere (taken back after a timeout),
        so the map stays about as small as what is in flight."""
        if len(self.ids) <= 2 * self.buffer_size + 16:
            return
        for event_id, number in list(self.ids.items()):
            try:
                self.sub.retry_count(number)
            except InvalidArgumentError:
                del self.ids[event_id]


class _Stats:
    """Throughput counters of one group in this process (GetInfo's measurements)."""

    def __init__(self) -> None:
        self.total_items = 0
        self.last_total_items = 0
        self.last_measured = time.monotonic()
        self.lag_updated = 0.0


def _raw_event(row: EventRow) -> RecordedEvent:
    """A RecordedEvent for the engine whose ``data`` is the stored row itself (the engine
    never looks at data; the service converts the row for the wire)."""
    return recorded_event(
        row[1], row[0], row[2], row[3], row[4], row[5], row, None, row[9], row[10], row[11]
    )


def _peer(peer: str) -> str:
    """``127.0.0.1:5000`` from gRPC's ``ipv4:127.0.0.1:5000``."""
    for prefix in ("ipv4:", "ipv6:", "unix:"):
        if peer.startswith(prefix):
            return peer[len(prefix) :]
    return peer


def _username(metadata: dict[str, Any]) -> str:
    """The user of HTTP Basic credentials (checked by the server's interceptor when it
    requires them), or KurrentDB's ``anonymous``."""
    header = metadata.get("authorization")
    if isinstance(header, str) and header[:6].lower() == "basic ":
        with contextlib.suppress(binascii.Error, UnicodeDecodeError):
            user = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")[0]
            if user:
                return user
    return "anonymous"


def _position_text(stream: str, number: int) -> str:
    """A checkpoint or head (an evstore event number, 0 = none) as GetInfo shows it: the
    0-based revision for a stream, ``C:<commit>/P:<prepare>`` for ``$all``."""
    if number <= 0:
        return ""
    if stream == ALL_STREAM:
        return f"C:{number}/P:{number}"
    return str(number - 1)


# -- the service -----------------------------------------------------------------------------


class PersistentSubscriptionsServicer(pb_grpc.PersistentSubscriptionsServicer):
    """KurrentDB's ``event_store.client.persistent_subscriptions.PersistentSubscriptions``.

    Args:
        state: the server's :class:`~evstore.server.state.ServerState`: ``state.store`` is
            the AsyncEventStore served, ``state.metrics`` the server's metrics,
            ``state.stopping`` is set when the server shuts down (consumers are then
            dropped) and ``state.add_shutdown_hook`` stops the groups before the store
            closes.
    """

    def __init__(self, state: Any) -> None:
        self._state = state
        self._store: AsyncEventStore = state.store
        backend = self._store._backend
        self._backend = backend
        self._encoder = EventEncoder(
            json_native=isinstance(self._store.serializer, JsonSerializer),
            binary=backend.supports_binary,
        )
        self._registry = SubscriptionRegistry(backend, self._read_rows, self._store._stream_version)
        self._groups = GroupConfigStore(self._store)
        self._consumers: dict[tuple[str, str], set[_Consumer]] = {}
        self._stats: dict[tuple[str, str], _Stats] = {}
        # Create/Update/Delete of one group, and consumers joining it, one at a time.
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._watcher: asyncio.Task[None] | None = None
        add_hook = getattr(state, "add_shutdown_hook", None)
        if callable(add_hook):
            add_hook(self.close)

    async def close(self) -> None:
        """Drop every consumer and stop every group (checkpoints flushed). Idempotent."""
        for key in list(self._consumers):
            self._drop(*key)
        await self._registry.close()
        if self._watcher is not None:
            self._watcher.cancel()

    async def _read_rows(self, stream: str, start: int, count: int) -> list[RecordedEvent]:
        # The store's own read, minus decoding (see the module docstring).
        if stream == ALL_STREAM:
            operation = self._backend.read_all(start, count, forward=True, conn=None)
        else:
            operation = self._backend.read_stream(stream, start, count, forward=True, conn=None)
        rows = await self._store._run(operation)
        return [_raw_event(row) for row in rows]

    def _lock(self, key: tuple[str, str]) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def _watch(self) -> None:
        """Start (once) the task that drops consumers when the server stops or when their
        group is changed by another process."""
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch_groups())

    async def _watch_groups(self) -> None:
        stopping = getattr(self._state, "stopping", None)
        if not isinstance(stopping, asyncio.Event):
            stopping = asyncio.Event()
        while True:
            # Shutdown must not wait for these long-lived calls: drop them at once.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CONFIG_POLL):
                    await stopping.wait()
                for key in list(self._consumers):
                    self._drop(*key)
                    await self._registry.stop(*key)
                return
            if not self._consumers:
                continue
            try:
                _, groups = await self._groups.load()
            except Exception as exc:  # the database may be briefly unreachable
                log.warning("persistent subscriptions: cannot read the configuration: %r", exc)
                continue
            for key, members in list(self._consumers.items()):
                if any(member.group != groups.get(key) for member in members):
                    async with self._lock(key):
                        self._drop(*key)
                        await self._registry.stop(*key)

    # -- Create / Update / Delete ----------------------------------------------------------

    async def Create(self, request: pb.CreateReq, context: Context) -> pb.CreateResp:
        """Create a group (ALREADY_EXISTS if it exists)."""
        try:
            options = request.options
            stream, start, event_filter = _target(options, with_filter=True)
            name = options.group_name
            if options.WhichOneof("stream_option") != "all":
                _check_stream_target(stream, name)
            name = _checked_group(name)
            raw = options.settings
            strategy = raw.consumer_strategy or _enum_strategy(
                pb.CreateReq.ConsumerStrategy, raw.named_consumer_strategy
            )
            settings = _settings(raw, strategy)
            self._check_settings(stream, name, settings, start)
            try:
                start_from = await resolve_start(self._store, stream, start)
            except GroupFailedError as exc:
                raise _Abort(failed(stream, name, exc.reason)) from None
            group = Group(stream, name, settings, start, start_from, event_filter)
            async with self._lock((stream, name)):
                try:
                    # The buffer check comes after the existence check, as in KurrentDB.
                    await self._groups.create(group, settings.check_buffers)
                except GroupExistsError:
                    raise _Abort(already_exists(stream, name)) from None
                except GroupFailedError as exc:
                    raise _Abort(failed(stream, name, exc.reason)) from None
        except _Abort as exc:
            await _abort(context, exc.failure)
        return pb.CreateResp()

    @staticmethod
    def _check_settings(
        stream: str, name: str, settings: GroupSettings, start: StartPosition
    ) -> None:
        try:
            settings.check()
            check_start(stream, start)
        except GroupInvalidError as exc:
            raise _Abort(invalid(exc.reason)) from None
        except GroupFailedError as exc:
            raise _Abort(failed(stream, name, exc.reason)) from None

    async def Update(self, request: pb.UpdateReq, context: Context) -> pb.UpdateResp:
        """Replace a group's settings and restart it: its consumers are dropped (CANCELLED)
        and reconnect to the new settings. The filter of a ``$all`` group is kept."""
        try:
            options = request.options
            stream, start, _ = _target(options, with_filter=False)
            name = _checked_group(options.group_name)
            if stream != ALL_STREAM:
                _checked_stream(stream)
            raw = options.settings
            settings = _settings(
                raw, _enum_strategy(pb.UpdateReq.ConsumerStrategy, raw.named_consumer_strategy)
            )

            async def prepare(current: Group) -> Group:
                self._check_settings(stream, name, settings, start)
                if start == current.start:
                    start_from = current.start_from  # the same start: keep where it resolved
                else:
                    start_from = await resolve_start(self._store, stream, start)
                settings.check_buffers()
                return Group(stream, name, settings, start, start_from, current.filter)

            async with self._lock((stream, name)):
                try:
                    old, new = await self._groups.update(stream, name, prepare)
                except GroupNotFoundError:
                    raise _Abort(does_not_exist(stream, name)) from None
                except GroupFailedError as exc:
                    raise _Abort(failed(stream, name, exc.reason)) from None
                self._drop(stream, name)
                await self._registry.stop(stream, name)
                if new.start_from != old.start_from:
                    await self._restart_from(old, new)
        except _Abort as exc:
            await _abort(context, exc.failure)
        return pb.UpdateResp()

    async def _restart_from(self, old: Group, new: Group) -> None:
        """A new start applies while the group has processed nothing (KurrentDB: while
        it has no checkpoint); after that, the group resumes from its checkpoint."""
        row = (await self._rows()).get((new.stream, new.name))
        if row is not None and row.checkpoint == old.start_from:
            await self._backend.store_checkpoint(new.stream, new.name, new.start_from)

    async def Delete(self, request: pb.DeleteReq, context: Context) -> pb.DeleteResp:
        """Delete a group with its checkpoint and parked events; its consumers are dropped
        (CANCELLED, as KurrentDB's service shuts the group down)."""
        try:
            options = request.options
            stream = _source(options)
            name = _checked_group(options.group_name)
            key = (stream, name)
            async with self._lock(key):
                try:
                    await self._groups.delete(stream, name)
                except GroupNotFoundError:
                    raise _Abort(does_not_exist(stream, name)) from None
                self._drop(stream, name)
                await self._registry.delete(stream, name)
                self._stats.pop(key, None)
                with contextlib.suppress(KeyError):
                    self._state.metrics.persistent_subscription_lag.remove(stream, name)
            if not self._lock(key).locked():
                self._locks.pop(key, None)
        except _Abort as exc:
            await _abort(context, exc.failure)
        return pb.DeleteResp()

    def _drop(self, stream: str, name: str) -> None:
        """Mark the local consumers of a group as dropped ("was dropped"); they end when
        their engine stops."""
        for consumer in self._consumers.get((stream, name), ()):
            if consumer.failure is None:
                consumer.failure = dropped(stream, name)

    # -- Read --------------------------------------------------------------------------------

    async def Read(
        self, request_iterator: AsyncIterator[pb.ReadReq], context: Context
    ) -> AsyncIterator[pb.ReadResp]:
        """A consumer: the confirmation ``"<stream>::<group>"``, then events with their
        retry counts; acks and nacks arrive on the request stream."""
        self._watch()
        requests = request_iterator.__aiter__()
        try:
            first = await requests.__anext__()
        except StopAsyncIteration:
            return
        consumer: _Consumer | None = None
        try:
            consumer = await self._connect(first, context)
        except _Abort as exc:
            await _abort(context, exc.failure)
        assert consumer is not None
        metrics = self._state.metrics
        metrics.persistent_subscriptions.inc()
        pump: asyncio.Task[None] | None = None
        try:
            yield pb.ReadResp(
                subscription_confirmation=pb.ReadResp.SubscriptionConfirmation(
                    subscription_id=consumer.group.key
                )
            )
            pump = asyncio.get_running_loop().create_task(self._pump(requests, consumer))
            structured = first.options.uuid_option.WhichOneof("content") == "structured"
            async with contextlib.aclosing(self._deliver(consumer, structured)) as messages:
                async for message in messages:
                    yield message
            group = consumer.group
            await _abort(context, consumer.failure or dropped(group.stream, group.name))
        finally:
            metrics.persistent_subscriptions.dec()
            if pump is not None:
                pump.cancel()
            await asyncio.shield(self._release(consumer))

    async def _deliver(
        self, consumer: _Consumer, structured: bool
    ) -> AsyncGenerator[pb.ReadResp, None]:
        """The events for one consumer, until it fails or is dropped."""
        group, sub = consumer.group, consumer.sub
        stream = None if group.all_streams else group.stream
        resolve_links = group.settings.resolve_links
        stats = self._stats.setdefault((group.stream, group.name), _Stats())
        while consumer.failure is None:
            try:
                batch = await sub.receive()
            except Exception as exc:  # the engine ended with an error
                log.warning("persistent subscription %s ended: %r", group.key, exc)
                return
            if batch is None or consumer.failure is not None:
                return
            for event in batch:
                number = event.event_number
                row: EventRow = event.data
                if row[0] != number:  # a replayed parked event, read back from $all
                    row = (number, *row[1:])
                wire = self._encoder.read_event(
                    row, stream=stream, structured=structured, resolve_links=resolve_links
                ).event
                read_event = pb.ReadResp.ReadEvent.FromString(wire.SerializeToString())
                try:
                    read_event.retry_count = sub.retry_count(number)
                except InvalidArgumentError:
                    read_event.retry_count = 0  # taken back meanwhile: it comes again
                # Clients ack the link's id when there is one, else the event's.
                acked = read_event.link if read_event.HasField("link") else read_event.event
                consumer.ids[uuid_from_message(acked.id)] = number
                yield pb.ReadResp(event=read_event)
            consumer.total_items += len(batch)
            stats.total_items += len(batch)
            consumer.prune()
            await self._refresh_lag(group, stats, sub.checkpoint)

    async def _refresh_lag(self, group: Group, stats: _Stats, checkpoint: int) -> None:
        now = time.monotonic()
        if now - stats.lag_updated < _LAG_INTERVAL:
            return
        stats.lag_updated = now
        head = await self._head(group.stream)
        lag = self._state.metrics.persistent_subscription_lag
        lag.labels(group.stream, group.name).set(max(head - checkpoint, 0))

    async def _connect(self, first: pb.ReadReq, context: Context) -> _Consumer:
        if first.WhichOneof("content") != "options":
            raise _Abort(invalid("The first request of Read must carry the options."))
        options = first.options
        stream = _source(options)
        name = _checked_group(options.group_name)
        if options.buffer_size <= 0:
            raise _Abort(invalid(f"buffer_size must be positive, got {options.buffer_size}"))
        async with self._lock((stream, name)):
            group = await self._groups.get(stream, name)
            if group is None:
                raise _Abort(does_not_exist(stream, name))
            engine_options = group.engine_options()
            engine_options["buffer_size"] = options.buffer_size
            try:
                sub = await self._registry.subscribe(
                    stream, name, SubscriptionOptions.checked(engine_options), object()
                )
            except TooManySubscribersError:
                raise _Abort(maximum_subscribers(stream, name)) from None
            except SubscriptionError:
                raise _Abort(dropped(stream, name)) from None
            metadata = dict(context.invocation_metadata() or ())
            connection_name = metadata.get("connection-name")
            consumer = _Consumer(
                group,
                sub,
                options.buffer_size,
                _peer(context.peer()),
                connection_name if isinstance(connection_name, str) else "<unknown>",
                _username(metadata),
            )
            self._consumers.setdefault((stream, name), set()).add(consumer)
        return consumer

    async def _release(self, consumer: _Consumer | None) -> None:
        if consumer is None:
            return
        key = (consumer.group.stream, consumer.group.name)
        members = self._consumers.get(key)
        if members is not None:
            members.discard(consumer)
            if not members:
                del self._consumers[key]
        try:
            await consumer.sub.close()
        except Exception:  # pragma: no cover - closing must not hide the call's outcome
            log.exception("closing the subscriber of %s failed", consumer.group.key)

    async def _pump(self, requests: AsyncIterator[pb.ReadReq], consumer: _Consumer) -> None:
        """Apply one consumer's acks and nacks until its request stream ends (a half-closed
        request stream does not end the delivery, as in KurrentDB)."""
        try:
            async for request in requests:
                kind = request.WhichOneof("content")
                if kind == "ack":
                    await self._handle(consumer, consumer.numbers(request.ack.ids), "skip")
                elif kind == "nack":
                    if request.nack.action not in _NACK_ACTIONS:
                        raise _Abort(invalid(f"'{request.nack.action}' is not a valid Action"))
                    action = _NACK_ACTIONS[request.nack.action]
                    numbers = consumer.numbers(request.nack.ids)
                    if action is not None:
                        await self._handle(consumer, numbers, action)
                else:
                    raise _Abort(invalid(f"'{kind}' is not a valid request after the options."))
        except _Abort as exc:
            consumer.failure = exc.failure
            await consumer.sub.close()  # ends the delivery, which reports the failure
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the call ended under us: the delivery ends too
            log.debug("request stream of %s ended: %r", consumer.group.key, exc)

    @staticmethod
    async def _handle(consumer: _Consumer, numbers: Sequence[int], action: NackAction) -> None:
        if not numbers:
            return
        try:
            # The engine takes event numbers as well as events (its annotation names events).
            await consumer.sub.nack(cast(Any, list(numbers)), action)
        except InvalidArgumentError as exc:
            # Delivered before the engine lost and regained ownership: they come again.
            log.debug("%s: %s", consumer.group.key, exc)

    # -- GetInfo / List ------------------------------------------------------------------------

    async def GetInfo(self, request: pb.GetInfoReq, context: Context) -> pb.GetInfoResp:
        """A group's settings, connections and counters."""
        try:
            options = request.options
            stream = _source(options)
            name = options.group_name
            group = await self._groups.get(stream, name)
            if group is None:
                raise _Abort(does_not_exist(stream, name))
            info = await self._info(group, await self._rows(), {})
        except _Abort as exc:
            await _abort(context, exc.failure)
        return pb.GetInfoResp(subscription_info=info)

    async def List(self, request: pb.ListReq, context: Context) -> pb.ListResp:
        """Every group, or those of one stream (NOT_FOUND when there are none)."""
        try:
            options = request.options
            which = options.WhichOneof("list_option")
            if which == "list_all_subscriptions":
                stream: str | None = None
            elif which == "list_for_stream":
                stream = _source(options.list_for_stream, "stream")
            else:
                raise _Abort(invalid("'None' is not a valid list option"))
            groups = await self._groups.list(stream)
            if not groups:
                raise _Abort(does_not_exist(stream or "", ""))
            rows = await self._rows()
            heads: dict[str, int] = {}
            infos = [await self._info(group, rows, heads) for group in groups]
        except _Abort as exc:
            await _abort(context, exc.failure)
        return pb.ListResp(subscriptions=infos)

    async def _rows(self) -> dict[tuple[str, str], SubscriptionInfo]:
        return {
            (r.stream_id, r.subscription_name): r for r in await self._store.list_subscriptions()
        }

    async def _head(self, stream: str) -> int:
        """The stream's version (``$all``: its highest position); 0 when it has none."""
        try:
            return (await self._store.stream_info(stream)).stream_version
        except (StreamNotFoundError, StreamDeletedError):
            return 0

    async def _info(
        self,
        group: Group,
        rows: dict[tuple[str, str], SubscriptionInfo],
        heads: dict[str, int],
    ) -> pb.SubscriptionInfo:
        key = (group.stream, group.name)
        row = rows.get(key)
        if group.stream not in heads:
            heads[group.stream] = await self._head(group.stream)
        head = heads[group.stream]
        checkpoint = row.checkpoint if row is not None else 0
        self._state.metrics.persistent_subscription_lag.labels(group.stream, group.name).set(
            max(head - max(checkpoint, group.start_from), 0)
        )
        stats = self._stats.setdefault(key, _Stats())
        now = time.monotonic()
        elapsed = now - stats.last_measured
        connections = []
        total_in_flight = 0
        for consumer in sorted(self._consumers.get(key, ()), key=id):
            in_flight = consumer.in_flight
            total_in_flight += in_flight
            recent = consumer.total_items - consumer.last_total_items
            consumer.last_total_items = consumer.total_items
            # "from" is a Python keyword: it can only be given through a mapping.
            peer: dict[str, Any] = {"from": consumer.peer}
            connections.append(
                pb.SubscriptionInfo.ConnectionInfo(
                    **peer,
                    username=consumer.username,
                    average_items_per_second=int(recent / elapsed) if elapsed > 0 else 0,
                    total_items=consumer.total_items,
                    count_since_last_measurement=recent,
                    available_slots=max(consumer.buffer_size - in_flight, 0),
                    in_flight_messages=in_flight,
                    connection_name=consumer.connection_name,
                )
            )
        recent = stats.total_items - stats.last_total_items
        stats.last_total_items = stats.total_items
        stats.last_measured = now
        s = group.settings
        return pb.SubscriptionInfo(
            event_source=group.stream,
            group_name=group.name,
            status="Live",
            connections=connections,
            average_per_second=int(recent / elapsed) if elapsed > 0 else 0,
            total_items=stats.total_items,
            count_since_last_measurement=recent,
            last_checkpointed_event_position=_position_text(group.stream, checkpoint),
            last_known_event_position=_position_text(group.stream, head),
            resolve_link_tos=s.resolve_links,
            start_from=group.start_from_text,
            message_timeout_milliseconds=s.message_timeout_ms,
            extra_statistics=s.extra_statistics,
            max_retry_count=s.max_retry_count,
            live_buffer_size=s.live_buffer_size,
            buffer_size=s.history_buffer_size,
            read_batch_size=s.read_batch_size,
            check_point_after_milliseconds=s.checkpoint_after_ms,
            min_check_point_count=s.min_checkpoint_count,
            max_check_point_count=s.max_checkpoint_count,
            read_buffer_count=0,
            live_buffer_count=0,
            retry_buffer_count=0,
            total_in_flight_messages=total_in_flight,
            outstanding_messages_count=total_in_flight,
            named_consumer_strategy=s.consumer_strategy,
            max_subscriber_count=s.max_subscriber_count,
            parked_message_count=row.parked_count if row is not None else 0,
        )

    # -- ReplayParked / RestartSubsystem ------------------------------------------------------

    async def ReplayParked(
        self, request: pb.ReplayParkedReq, context: Context
    ) -> pb.ReplayParkedResp:
        """Deliver the group's parked events again, ahead of new events (``stop_at`` is
        accepted; every parked event is replayed)."""
        try:
            options = request.options
            stream = _source(options)
            name = options.group_name
            if await self._groups.get(stream, name) is None:
                raise _Abort(does_not_exist(stream, name))
            if options.WhichOneof("stop_at_option") == "stop_at" and options.stop_at < 0:
                raise _Abort(invalid(f"stop_at must not be negative, got {options.stop_at}"))
            await self._registry.replay_parked(stream, name)
        except _Abort as exc:
            await _abort(context, exc.failure)
        return pb.ReplayParkedResp()

    async def RestartSubsystem(
        self, request: shared_pb2.Empty, context: Context
    ) -> shared_pb2.Empty:
        """Accepted and ignored: groups start with their first consumer; there is no
        subsystem to restart."""
        return shared_pb2.Empty()
