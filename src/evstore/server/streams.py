"""The ``event_store.client.streams.Streams`` service: reads, catch-up subscriptions,
appends, batch appends, soft and hard deletes, with KurrentDB's semantics and errors.

The rules themselves (revisions, expectations, deletion, idempotency) live in
:mod:`evstore.server.dialect`; this module validates the requests, maps them onto the
dialect and answers with KurrentDB's messages, status codes, texts and ``exception``
trailers (clients parse the texts: "... is deleted.", "... Actual version: -1").
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import quote

import grpc
import grpc.aio
from google.protobuf.message import Message

from evstore._checks import check_text
from evstore._types import MAX_EVENT_TYPE_LENGTH
from evstore.backends.base import NewEvent
from evstore.errors import EventStoreError, EventStoreTimeoutError, InvalidArgumentError
from evstore.server._generated import (
    code_pb2,
    shared_pb2,
    streams_pb2,
    streams_pb2_grpc,
)
from evstore.server.convert import CONTENT_JSON, EventEncoder, uuid_from_message
from evstore.server.dialect import (
    INT64_MAX,
    BadRequest,
    Dialect,
    DialectError,
    Expected,
    ExpectedKind,
    StreamDeleted,
    StreamNotFound,
    WriteResult,
    WrongExpectedVersion,
)
from evstore.server.filters import EventFilter, FilterError, checkpoint_interval
from evstore.server.follow import (
    END,
    START,
    CaughtUp,
    Checkpoint,
    StartPoint,
    follow_all,
    follow_stream,
)

__all__ = ["DEFAULT_MAX_APPEND_SIZE", "StreamsServicer"]

DEFAULT_MAX_APPEND_SIZE = 1_048_576
"""KurrentDB's default limit on the data and metadata bytes of one append."""
READ_PAGE_SIZE = 500
SUBSCRIPTION_PAGE_SIZE = 256

Context = grpc.aio.ServicerContext[Any, Any]
ReadOptions = streams_pb2.ReadReq.Options
_MAX_DEADLINE_SECONDS = 10 * 365 * 86_400  # "no deadline" arrives as 315,576,000,000 s

# Status codes of BatchAppend errors (google.rpc.Code numbers).
_CODE_ALREADY_EXISTS = code_pb2.ALREADY_EXISTS
_CODE_NOT_FOUND = code_pb2.NOT_FOUND
_CODE_INVALID_ARGUMENT = code_pb2.INVALID_ARGUMENT
_CODE_DEADLINE_EXCEEDED = code_pb2.DEADLINE_EXCEEDED
_CODE_UNKNOWN = code_pb2.UNKNOWN


class _Abort(Exception):
    """A whole call fails with this status (raised where ``context.abort`` cannot be)."""

    def __init__(self, code: grpc.StatusCode, message: str, trailers: dict[str, str]) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.trailers = trailers


def _invalid(message: str, trailers: dict[str, str] | None = None) -> _Abort:
    return _Abort(grpc.StatusCode.INVALID_ARGUMENT, message, trailers or {})


def _deleted(stream: str) -> _Abort:
    return _Abort(
        grpc.StatusCode.FAILED_PRECONDITION,
        f"Event stream '{stream}' is deleted.",
        {"exception": "stream-deleted", "stream-name": stream},
    )


def _delete_conflict(error: WrongExpectedVersion) -> _Abort:
    return _Abort(
        grpc.StatusCode.FAILED_PRECONDITION,
        f"Delete failed due to WrongExpectedVersion. Stream: {error.stream}, "
        f"Expected version: {error.expected.code}, Actual version: {error.actual_code}",
        {
            "exception": "wrong-expected-version",
            "stream-name": error.stream,
            "expected-version": str(error.expected.code),
            "actual-version": str(error.actual_code),
        },
    )


def _unexpected(error: BaseException) -> _Abort:
    if isinstance(error, EventStoreTimeoutError | TimeoutError):
        return _Abort(grpc.StatusCode.ABORTED, f"Operation timed out: {error}", {})
    return _Abort(grpc.StatusCode.UNKNOWN, f"Unexpected {type(error).__name__}: {error}", {})


def _trailer_value(value: str) -> str:
    """``value`` fit for a gRPC header: printable ASCII as it is, anything else (a stream
    name in another script, say) percent-encoded as UTF-8, which gRPC would refuse raw."""
    if value.isascii() and value.isprintable():
        return value
    return "".join(c if c.isascii() and c.isprintable() else quote(c, safe="") for c in value)


async def _abort(context: Context, failure: _Abort) -> NoReturn:
    trailers = tuple((key, _trailer_value(value)) for key, value in failure.trailers.items())
    await context.abort(failure.code, failure.message, trailers)
    raise AssertionError("context.abort returned")  # pragma: no cover


def _stream_name(identifier: shared_pb2.StreamIdentifier) -> str:
    try:
        return identifier.stream_name.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("the stream name is not valid UTF-8") from None


def _expected(options: Message, oneof: str, field_names: tuple[str, str, str, str]) -> Expected:
    """The expectation in the oneof ``oneof``, whose members are (revision, no_stream, any,
    stream_exists), named ``field_names``."""
    revision, no_stream, any_, exists = field_names
    which = options.WhichOneof(oneof)
    if which == revision:
        value = getattr(options, revision)
        if value > INT64_MAX:
            raise _invalid(f"expected revision {value} is out of range")
        return Expected.exact(value)
    if which == no_stream:
        return Expected.no_stream()
    if which == any_:
        return Expected.any()
    if which == exists:
        return Expected.stream_exists()
    raise _invalid("the expected stream revision is missing")


_REVISION_FIELDS = ("revision", "no_stream", "any", "stream_exists")
_BATCH_FIELDS = ("stream_position", "no_stream", "any", "stream_exists")


@dataclass(slots=True)
class _Batch:
    """One BatchAppend correlation id's chunks, gathered until ``is_final``."""

    correlation_id: shared_pb2.UUID
    options: streams_pb2.BatchAppendReq.Options
    events: list[NewEvent] = field(default_factory=list)
    size: int = 0
    error: DialectError | _Abort | None = None
    deadline: float | None = None


class StreamsServicer(streams_pb2_grpc.StreamsServicer):
    """The Streams service over the server's store.

    Args:
        state: the server's :class:`~evstore.server.state.ServerState` (``store``,
            ``metrics``, ``stopping``; optionally ``max_append_size``).
    """

    def __init__(self, state: Any) -> None:
        self._state = state
        store = state.store
        self._dialect = Dialect(store, page_size=READ_PAGE_SIZE)
        self._encoder = EventEncoder(
            json_native=store.serializer.content_type == CONTENT_JSON,
            binary=store._backend.supports_binary,
        )
        self._metrics = getattr(state, "metrics", None)
        self._max_append_size: int = getattr(state, "max_append_size", DEFAULT_MAX_APPEND_SIZE)

    # -- metrics ---------------------------------------------------------------------

    def _count(self, name: str, amount: int = 1) -> None:
        metric = getattr(self._metrics, name, None)
        if metric is not None and amount:
            metric.inc(amount)

    def _gauge(self, name: str, delta: int) -> None:
        metric = getattr(self._metrics, name, None)
        if metric is not None:
            metric.inc(delta)

    # -- proposed events -------------------------------------------------------------

    def _proposed(
        self,
        message: streams_pb2.AppendReq.ProposedMessage | streams_pb2.BatchAppendReq.ProposedMessage,
    ) -> NewEvent:
        metadata = message.metadata
        for key in ("type", "content-type"):
            if key not in metadata:
                raise _invalid(
                    f"Required Metadata Property '{key}' is missing",
                    {
                        "exception": "missing-required-metadata-property",
                        "required-metadata-properties": "type,content-type",
                    },
                )
        event_id = uuid_from_message(message.id)
        event_type = metadata["type"]
        try:
            check_text(event_type, "type", max_length=MAX_EVENT_TYPE_LENGTH)
        except InvalidArgumentError as exc:
            raise BadRequest(f"event {event_id}: {exc}") from exc
        return self._encoder.new_event(
            event_id, event_type, metadata["content-type"], message.data, message.custom_metadata
        )

    def _check_size(self, size: int) -> None:
        if size > self._max_append_size:
            raise _invalid(
                f"Maximum Append Size of {self._max_append_size} Exceeded.",
                {
                    "exception": "maximum-append-size-exceeded",
                    "maximum-append-size": str(self._max_append_size),
                },
            )

    # -- Append ----------------------------------------------------------------------

    async def Append(
        self, request_iterator: AsyncIterator[streams_pb2.AppendReq], context: Context
    ) -> streams_pb2.AppendResp:
        """One atomic append: an ``options`` message, then the proposed messages."""
        try:
            first = await anext(request_iterator, None)
            if first is None or first.WhichOneof("content") != "options":
                raise _invalid("an append must begin with its options")
            options = first.options
            stream = _stream_name(options.stream_identifier)
            expected = _expected(options, "expected_stream_revision", _REVISION_FIELDS)
            events: list[NewEvent] = []
            size = 0
            async for request in request_iterator:
                if request.WhichOneof("content") != "proposed_message":
                    raise _invalid("only proposed messages may follow an append's options")
                message = request.proposed_message
                size += len(message.data) + len(message.custom_metadata)
                self._check_size(size)
                events.append(self._proposed(message))
            result = await self._dialect.append(stream, expected, events)
        except WrongExpectedVersion as conflict:
            return _append_conflict(conflict)
        except StreamDeleted as deleted:
            await _abort(context, _deleted(deleted.stream))
        except BadRequest as bad:
            await _abort(context, _invalid(str(bad)))
        except _Abort as failure:
            await _abort(context, failure)
        except EventStoreError as error:
            await _abort(context, _unexpected(error))
        self._count("appends")
        self._count("events_appended", len(events))
        success = streams_pb2.AppendResp.Success()
        if result.revision is None:
            success.no_stream.SetInParent()
        else:
            success.current_revision = result.revision
        if result.position is None:
            success.no_position.SetInParent()
        else:
            success.position.commit_position = result.position
            success.position.prepare_position = result.position
        return streams_pb2.AppendResp(success=success)

    # -- BatchAppend -----------------------------------------------------------------

    async def BatchAppend(
        self, request_iterator: AsyncIterator[streams_pb2.BatchAppendReq], context: Context
    ) -> AsyncIterator[streams_pb2.BatchAppendResp]:
        """Batches multiplexed by correlation id: each is gathered until its final chunk,
        written, and answered with one response (a success or a ``google.rpc.Status``)."""
        first = await anext(request_iterator, None)
        if first is None:
            return
        if first.is_final and first.HasField("correlation_id"):
            # What clients usually send: one batch in one chunk per call. Answer it without
            # the multiplexing machinery below (two tasks and a queue per call).
            batch = _Batch(first.correlation_id, first.options)
            self._start_batch(batch, first)
            self._add_chunk(batch, first)
            yield await self._write_batch(batch)
            first = None
        responses: asyncio.Queue[streams_pb2.BatchAppendResp | None] = asyncio.Queue()
        writes: set[asyncio.Task[None]] = set()

        async def write(batch: _Batch) -> None:
            await responses.put(await self._write_batch(batch))

        async def requests() -> AsyncIterator[streams_pb2.BatchAppendReq]:
            if first is not None:
                yield first
            async for request in request_iterator:
                yield request

        async def pump() -> None:
            batches: dict[bytes, _Batch] = {}
            try:
                async for request in requests():
                    if not request.HasField("correlation_id"):
                        raise _invalid("a batch append request needs a correlation id")
                    key = request.correlation_id.SerializeToString(deterministic=True)
                    batch = batches.get(key)
                    if batch is None:
                        batch = _Batch(request.correlation_id, request.options)
                        batches[key] = batch
                        self._start_batch(batch, request)
                    self._add_chunk(batch, request)
                    if request.is_final:
                        del batches[key]
                        task = asyncio.ensure_future(write(batch))
                        writes.add(task)
                        task.add_done_callback(writes.discard)
                if writes:
                    await asyncio.gather(*writes)
            finally:
                await responses.put(None)

        reader = asyncio.ensure_future(pump())
        try:
            while (response := await responses.get()) is not None:
                yield response
            await reader
        except _Abort as failure:
            await _abort(context, failure)
        finally:
            reader.cancel()
            for task in list(writes):
                task.cancel()

    def _start_batch(self, batch: _Batch, request: streams_pb2.BatchAppendReq) -> None:
        if not request.HasField("options"):
            batch.error = BadRequest("the first chunk of a batch must carry its options")
            return
        options = request.options
        if options.WhichOneof("deadline_option") == "deadline":
            seconds = options.deadline.seconds + options.deadline.nanos / 1e9
            if seconds < _MAX_DEADLINE_SECONDS:
                batch.deadline = time.monotonic() + seconds
        elif options.WhichOneof("deadline_option") == "deadline_21_10_0":
            remaining = options.deadline_21_10_0.ToDatetime().timestamp() - time.time()
            if remaining < _MAX_DEADLINE_SECONDS:
                batch.deadline = time.monotonic() + remaining

    def _add_chunk(self, batch: _Batch, request: streams_pb2.BatchAppendReq) -> None:
        if batch.error is not None:
            return
        try:
            for message in request.proposed_messages:
                batch.size += len(message.data) + len(message.custom_metadata)
                self._check_size(batch.size)
                batch.events.append(self._proposed(message))
        except (DialectError, _Abort) as error:
            batch.error = error
            batch.events.clear()

    async def _write_batch(self, batch: _Batch) -> streams_pb2.BatchAppendResp:
        response = streams_pb2.BatchAppendResp(correlation_id=batch.correlation_id)
        options = batch.options
        response.stream_identifier.CopyFrom(options.stream_identifier)
        which = options.WhichOneof("expected_stream_position")
        if which == "stream_position":
            response.stream_position = options.stream_position
        elif which is not None:
            getattr(response, which).SetInParent()
        stream = ""
        try:
            if batch.error is not None:
                raise batch.error
            stream = _stream_name(options.stream_identifier)
            expected = _expected(options, "expected_stream_position", _BATCH_FIELDS)
            if batch.deadline is not None and time.monotonic() > batch.deadline:
                _batch_error(response, _CODE_DEADLINE_EXCEEDED, "Timeout", shared_pb2.Timeout())
                return response
            result = await self._dialect.append(stream, expected, batch.events)
        except WrongExpectedVersion as conflict:
            _batch_error(
                response,
                _CODE_ALREADY_EXISTS,
                "WrongExpectedVersion",
                _wrong_expected_version_detail(conflict),
            )
            return response
        except StreamDeleted as deleted:
            _batch_error(
                response,
                _CODE_NOT_FOUND,
                str(deleted),
                shared_pb2.StreamDeleted(stream_identifier=options.stream_identifier),
            )
            return response
        except (BadRequest, _Abort) as bad:
            message = bad.message if isinstance(bad, _Abort) else str(bad)
            if isinstance(bad, _Abort) and "maximum-append-size" in bad.trailers:
                detail: Message = shared_pb2.MaximumAppendSizeExceeded(
                    maxAppendSize=self._max_append_size
                )
            else:
                detail = shared_pb2.BadRequest(message=message)
            _batch_error(response, _CODE_INVALID_ARGUMENT, message, detail)
            return response
        except EventStoreError as error:
            failure = _unexpected(error)
            _batch_error(response, _CODE_UNKNOWN, failure.message, shared_pb2.Unknown())
            return response
        self._count("appends")
        self._count("events_appended", len(batch.events))
        _batch_success(response, result)
        return response

    # -- Delete / Tombstone ----------------------------------------------------------

    async def Delete(
        self, request: streams_pb2.DeleteReq, context: Context
    ) -> streams_pb2.DeleteResp:
        """Soft delete (KurrentDB: ``$tb`` = Int64.MaxValue in the stream's metadata)."""
        result = await self._delete(request, context, tombstone=False)
        response = streams_pb2.DeleteResp()
        _set_position(response, result.position)
        return response

    async def Tombstone(
        self, request: streams_pb2.TombstoneReq, context: Context
    ) -> streams_pb2.TombstoneResp:
        """Hard delete: the stream can never be read or written again."""
        result = await self._delete(request, context, tombstone=True)
        response = streams_pb2.TombstoneResp()
        _set_position(response, result.position)
        return response

    async def _delete(
        self,
        request: streams_pb2.DeleteReq | streams_pb2.TombstoneReq,
        context: Context,
        *,
        tombstone: bool,
    ) -> WriteResult:
        try:
            if not request.HasField("options"):
                raise _invalid("the request has no options")
            options = request.options
            stream = _stream_name(options.stream_identifier)
            expected = _expected(options, "expected_stream_revision", _REVISION_FIELDS)
            if tombstone:
                return await self._dialect.tombstone(stream, expected)
            return await self._dialect.delete(stream, expected)
        except WrongExpectedVersion as conflict:
            await _abort(context, _delete_conflict(conflict))
        except StreamDeleted as deleted:
            await _abort(context, _deleted(deleted.stream))
        except BadRequest as bad:
            await _abort(context, _invalid(str(bad)))
        except _Abort as failure:
            await _abort(context, failure)
        except EventStoreError as error:
            await _abort(context, _unexpected(error))

    # -- Read ------------------------------------------------------------------------

    async def Read(
        self, request: streams_pb2.ReadReq, context: Context
    ) -> AsyncIterator[streams_pb2.ReadResp]:
        """Reads of a stream or ``$all`` (with a count) and catch-up subscriptions."""
        try:
            plan = _ReadPlan.of(request)
        except _Abort as failure:
            await _abort(context, failure)
        try:
            if plan.subscribe:
                items = self._subscription(plan)
            elif plan.stream is not None:
                items = self._read_stream(plan)
            else:
                items = self._read_all(plan)
            async with contextlib.aclosing(items) as responses:
                async for response in responses:
                    yield response
        except StreamDeleted as deleted:
            await _abort(context, _deleted(deleted.stream))
        except BadRequest as bad:
            await _abort(context, _invalid(str(bad)))
        except _Abort as failure:
            await _abort(context, failure)
        except EventStoreError as error:
            await _abort(context, _unexpected(error))

    async def _read_stream(self, plan: _ReadPlan) -> AsyncGenerator[streams_pb2.ReadResp, None]:
        stream = plan.stream
        assert stream is not None
        self._count("reads")
        if plan.start == START:
            start = 1
        elif plan.start == END:
            start = -1 if not plan.forward else INT64_MAX
        else:
            start = min(int(plan.start) + 1, INT64_MAX)
        try:
            rows = await self._dialect.read_stream(stream, start, plan.count, forward=plan.forward)
        except StreamNotFound:
            yield streams_pb2.ReadResp(
                stream_not_found=streams_pb2.ReadResp.StreamNotFound(
                    stream_identifier=self._encoder.identifier(stream)
                )
            )
            return
        sent = 0
        try:
            async for row in rows:
                yield self._encoder.read_event(
                    row, stream=stream, structured=plan.structured, resolve_links=plan.resolve
                )
                sent += 1
        finally:
            self._count("events_read", sent)

    async def _read_all(self, plan: _ReadPlan) -> AsyncGenerator[streams_pb2.ReadResp, None]:
        self._count("reads")
        forward = plan.forward
        if plan.start == START:
            if not forward:
                return
            start = 1
        elif plan.start == END:
            if forward:
                return
            start = -1
        elif forward:
            start = min(int(plan.start), INT64_MAX)
        else:
            start = min(int(plan.start), INT64_MAX) - 1  # backwards from P is exclusive
            if start < 1:
                return
        remaining = plan.count
        event_filter = plan.filter
        page_size = READ_PAGE_SIZE if event_filter is not None else min(READ_PAGE_SIZE, remaining)
        sent = 0
        try:
            while remaining > 0:
                rows = await self._dialect.all_page(start, page_size, forward=forward)
                for row in rows:
                    if event_filter is not None and not event_filter.matches(row[2], row[5]):
                        continue
                    yield self._encoder.read_event(
                        row, stream=None, structured=plan.structured, resolve_links=plan.resolve
                    )
                    sent += 1
                    remaining -= 1
                    if remaining <= 0:
                        return
                if len(rows) < page_size:
                    return
                start = rows[-1][4] + (1 if forward else -1)
                if start < 1:
                    return
        finally:
            self._count("events_read", sent)

    async def _subscription(self, plan: _ReadPlan) -> AsyncGenerator[streams_pb2.ReadResp, None]:
        stop: asyncio.Event | None = getattr(self._state, "stopping", None)
        if plan.stream is not None:
            items = follow_stream(
                self._dialect,
                plan.stream,
                plan.start,
                page_size=SUBSCRIPTION_PAGE_SIZE,
                stop=stop,
            )
        else:
            items = follow_all(
                self._dialect,
                plan.start,
                event_filter=plan.filter,
                checkpoint_interval=plan.checkpoint_interval,
                page_size=SUBSCRIPTION_PAGE_SIZE,
                stop=stop,
            )
        self._gauge("catch_up_subscriptions", 1)
        sent = 0
        try:
            yield streams_pb2.ReadResp(
                confirmation=streams_pb2.ReadResp.SubscriptionConfirmation(
                    subscription_id=str(uuid.uuid4())
                )
            )
            async with contextlib.aclosing(items) as followed:
                async for item in followed:
                    if isinstance(item, CaughtUp):
                        yield _caught_up(item)
                    elif isinstance(item, Checkpoint):
                        yield _checkpoint(item)
                    else:
                        yield self._encoder.read_event(
                            item,
                            stream=plan.stream,
                            structured=plan.structured,
                            resolve_links=plan.resolve,
                        )
                        sent += 1
                        if sent >= 100:
                            self._count("events_read", sent)
                            sent = 0
            raise _Abort(grpc.StatusCode.UNAVAILABLE, "Server Is Shutting Down", {})
        finally:
            self._count("events_read", sent)
            self._gauge("catch_up_subscriptions", -1)


# The messages live in evstore's own descriptor pool, so their well-known-type fields
# (Timestamp, Empty, Any) are that pool's classes: they are filled in place, never assigned
# google.protobuf's instances.


def _caught_up(item: CaughtUp) -> streams_pb2.ReadResp:
    message = streams_pb2.ReadResp.CaughtUp()
    message.timestamp.GetCurrentTime()
    if item.revision is not None:
        message.stream_revision = item.revision
    if item.position is not None:
        message.position.commit_position = item.position
        message.position.prepare_position = item.position
    return streams_pb2.ReadResp(caught_up=message)


def _checkpoint(item: Checkpoint) -> streams_pb2.ReadResp:
    message = streams_pb2.ReadResp.Checkpoint(
        commit_position=item.position, prepare_position=item.position
    )
    message.timestamp.GetCurrentTime()
    return streams_pb2.ReadResp(checkpoint=message)


def _set_position(
    response: streams_pb2.DeleteResp | streams_pb2.TombstoneResp, position: int | None
) -> None:
    if position is None:
        response.no_position.SetInParent()
    else:
        response.position.commit_position = position
        response.position.prepare_position = position


def _append_conflict(conflict: WrongExpectedVersion) -> streams_pb2.AppendResp:
    """The normal (not an error) WrongExpectedVersion answer of Append, with the legacy
    20.6.0 fields filled too."""
    wrong = streams_pb2.AppendResp.WrongExpectedVersion()
    if conflict.current is None:
        wrong.current_no_stream.SetInParent()
        wrong.no_stream_20_6_0.SetInParent()
    else:
        wrong.current_revision = conflict.current
        wrong.current_revision_20_6_0 = conflict.current
    expected = conflict.expected
    if expected.kind is ExpectedKind.REVISION:
        wrong.expected_revision = expected.revision
        wrong.expected_revision_20_6_0 = expected.revision
    elif expected.kind is ExpectedKind.ANY:
        wrong.expected_any.SetInParent()
        wrong.any_20_6_0.SetInParent()
    elif expected.kind is ExpectedKind.STREAM_EXISTS:
        wrong.expected_stream_exists.SetInParent()
        wrong.stream_exists_20_6_0.SetInParent()
    else:
        wrong.expected_no_stream.SetInParent()
    return streams_pb2.AppendResp(wrong_expected_version=wrong)


def _wrong_expected_version_detail(
    conflict: WrongExpectedVersion,
) -> shared_pb2.WrongExpectedVersion:
    detail = shared_pb2.WrongExpectedVersion()
    if conflict.current is None:
        detail.current_no_stream.SetInParent()
    else:
        detail.current_stream_revision = conflict.current
    expected = conflict.expected
    if expected.kind is ExpectedKind.REVISION:
        detail.expected_stream_position = expected.revision
    elif expected.kind is ExpectedKind.ANY:
        detail.expected_any.SetInParent()
    elif expected.kind is ExpectedKind.STREAM_EXISTS:
        detail.expected_stream_exists.SetInParent()
    else:
        detail.expected_no_stream.SetInParent()
    return detail


def _batch_error(
    response: streams_pb2.BatchAppendResp, code: int, message: str, detail: Message
) -> None:
    """Fill ``response.error``: the status and ONE detail in an Any whose type URL names
    it (type.googleapis.com/event_store.client.X), as the client looks it up."""
    error = response.error
    error.code = code  # type: ignore[assignment]
    error.message = message
    error.details.type_url = f"type.googleapis.com/{detail.DESCRIPTOR.full_name}"
    error.details.value = detail.SerializeToString()


def _batch_success(response: streams_pb2.BatchAppendResp, result: WriteResult) -> None:
    success = response.success
    if result.revision is None:
        success.no_stream.SetInParent()
    else:
        success.current_revision = result.revision
    if result.position is None:
        success.no_position.SetInParent()
    else:
        success.position.commit_position = result.position
        success.position.prepare_position = result.position


@dataclass(frozen=True, slots=True)
class _ReadPlan:
    """A validated ReadReq."""

    stream: str | None  # None: $all
    start: StartPoint
    forward: bool
    count: int
    subscribe: bool
    structured: bool
    resolve: bool
    filter: EventFilter | None
    checkpoint_interval: int | None

    @classmethod
    def of(cls, request: streams_pb2.ReadReq) -> _ReadPlan:
        """Validate ``request``; only KurrentDB's valid combinations pass.

        Raises:
            _Abort: INVALID_ARGUMENT.
        """
        if not request.HasField("options"):
            raise _invalid("the read request has no options")
        options = request.options
        uuid_form = options.uuid_option.WhichOneof("content")
        if uuid_form is None:
            raise _invalid("the uuid option is missing")
        stream_case = options.WhichOneof("stream_option")
        count_case = options.WhichOneof("count_option")
        filter_case = options.WhichOneof("filter_option")
        direction = options.read_direction
        if direction not in (ReadOptions.Forwards, ReadOptions.Backwards):
            raise _invalid(f"unknown read direction {direction}")
        forward = direction == ReadOptions.Forwards
        valid = (
            stream_case is not None
            and count_case is not None
            and filter_case is not None
            and (stream_case == "all" or filter_case == "no_filter")
            and (count_case == "count" or forward)
        )
        if not valid:
            raise _invalid(
                "The combination of ("
                + ", ".join(
                    _pascal(case)
                    for case in (
                        stream_case,
                        count_case,
                        "forwards" if forward else "backwards",
                        filter_case,
                    )
                )
                + ") is invalid."
            )
        stream: str | None = None
        start: StartPoint
        if stream_case == "stream":
            stream_options = options.stream
            stream = _stream_name(stream_options.stream_identifier)
            which = stream_options.WhichOneof("revision_option")
            if which == "revision":
                start = stream_options.revision
            elif which in ("start", "end"):
                start = START if which == "start" else END
            else:
                raise _invalid("the stream read has no revision option")
            if not stream or stream == "$all":
                raise _invalid(f"invalid stream name {stream!r}")
        else:
            which = options.all.WhichOneof("all_option")
            if which == "position":
                start = options.all.position.commit_position
            elif which in ("start", "end"):
                start = START if which == "start" else END
            else:
                raise _invalid("the $all read has no position option")
        event_filter = None
        interval = None
        if filter_case == "filter":
            event_filter, interval = _filter(options.filter)
        count = options.count if count_case == "count" else 0
        return cls(
            stream,
            start,
            forward,
            min(count, INT64_MAX),
            count_case == "subscription",
            uuid_form == "structured",
            options.resolve_links,
            event_filter,
            interval,
        )


def _pascal(case: str | None) -> str:
    if case is None:
        return "None"
    return "".join(part.capitalize() for part in case.split("_"))


def _filter(options: ReadOptions.FilterOptions) -> tuple[EventFilter, int]:
    which = options.WhichOneof("filter")
    if which is None:
        raise _invalid("the filter has neither a stream name nor an event type expression")
    expression = options.stream_identifier if which == "stream_identifier" else options.event_type
    window_case = options.WhichOneof("window")
    if window_case is None:
        raise _invalid("the filter has no window (max or count)")
    window = options.max if window_case == "max" else None
    try:
        event_filter = EventFilter.create(
            "stream" if which == "stream_identifier" else "event_type",
            expression.regex,
            _strings(expression.prefix),
        )
    except FilterError as exc:
        raise _invalid(str(exc)) from exc
    return event_filter, checkpoint_interval(window, options.checkpointIntervalMultiplier)


def _strings(values: Iterable[str]) -> Sequence[str]:
    return [value for value in values if value]
