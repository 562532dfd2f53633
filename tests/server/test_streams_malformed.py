"""Hand-built requests through a raw gRPC stub: malformed or out-of-range Streams requests
get INVALID_ARGUMENT (or KurrentDB's exact error) and the server keeps serving; the wire
details clients rely on (trailers, BatchAppend status details, structured UUIDs)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import empty_pb2
from kurrentdbclient import KurrentDBClient, NewEvent, StreamState
from kurrentdbclient.exceptions import MaximumAppendSizeExceededError, StreamIsDeletedError
from kurrentdbclient.protos.v1 import shared_pb2, streams_pb2, streams_pb2_grpc

from evstore.server.app import BackgroundServer

Options = streams_pb2.ReadReq.Options
WAIT = 10.0


@pytest.fixture
def channel(server: BackgroundServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as opened:
        yield opened


@pytest.fixture
def stub(channel: grpc.Channel) -> streams_pb2_grpc.StreamsStub:
    return streams_pb2_grpc.StreamsStub(channel)  # type: ignore[no-untyped-call]


def empty() -> shared_pb2.Empty:
    return shared_pb2.Empty()


def stream_id(name: str | bytes) -> shared_pb2.StreamIdentifier:
    raw = name.encode() if isinstance(name, str) else name
    return shared_pb2.StreamIdentifier(stream_name=raw)


def read_options(**fields: object) -> Options:
    options = Options(**fields)  # type: ignore[arg-type]
    if not options.HasField("uuid_option"):
        options.uuid_option.string.CopyFrom(empty())
    return options


def stream_read(name: str = "s", **fields: object) -> Options:
    defaults: dict[str, object] = {
        "stream": Options.StreamOptions(stream_identifier=stream_id(name), start=empty()),
        "count": 10,
        "no_filter": empty(),
    }
    defaults.update(fields)
    return read_options(**defaults)


def all_read(**fields: object) -> Options:
    defaults: dict[str, object] = {
        "all": Options.AllOptions(start=empty()),
        "count": 10,
        "no_filter": empty(),
    }
    defaults.update(fields)
    return read_options(**defaults)


def read(stub: streams_pb2_grpc.StreamsStub, options: Options) -> list[streams_pb2.ReadResp]:
    return list(stub.Read(streams_pb2.ReadReq(options=options), timeout=WAIT))


def expect_status(call: object, code: grpc.StatusCode) -> grpc.RpcError:
    assert isinstance(call, grpc.RpcError)
    assert call.code() == code, (call.code(), call.details())
    return call


def check_serving(client: KurrentDBClient) -> None:
    """The server still answers normal calls."""
    name = f"alive-{uuid.uuid4()}"
    client.append_to_stream(
        name, events=NewEvent(type="T", data=b"{}"), current_version=StreamState.ANY
    )
    assert len(client.get_stream(name)) == 1


def proposed(**fields: object) -> streams_pb2.AppendReq.ProposedMessage:
    defaults: dict[str, object] = {
        "id": shared_pb2.UUID(string=str(uuid.uuid4())),
        "metadata": {"type": "T", "content-type": "application/json"},
        "data": b"{}",
    }
    defaults.update(fields)
    return streams_pb2.AppendReq.ProposedMessage(**defaults)  # type: ignore[arg-type]


def append_options(name: str | bytes = "s", **fields: object) -> streams_pb2.AppendReq:
    if not fields:
        fields = {"any": empty()}
    return streams_pb2.AppendReq(
        options=streams_pb2.AppendReq.Options(stream_identifier=stream_id(name), **fields)  # type: ignore[arg-type]
    )


INVALID_READS = {
    "no options": streams_pb2.ReadReq(),
    "no uuid option": streams_pb2.ReadReq(
        options=Options(
            stream=Options.StreamOptions(stream_identifier=stream_id("s"), start=empty()),
            count=1,
            no_filter=empty(),
        )
    ),
    "no stream option": streams_pb2.ReadReq(options=read_options(count=1, no_filter=empty())),
    "no count option": streams_pb2.ReadReq(
        options=read_options(all=Options.AllOptions(start=empty()), no_filter=empty())
    ),
    "no filter option": streams_pb2.ReadReq(
        options=read_options(all=Options.AllOptions(start=empty()), count=1)
    ),
    "stream with a filter": streams_pb2.ReadReq(
        options=stream_read(
            filter=Options.FilterOptions(
                event_type=Options.FilterOptions.Expression(regex="x"), max=1
            )
        )
    ),
    "backwards stream subscription": streams_pb2.ReadReq(
        options=stream_read(
            subscription=Options.SubscriptionOptions(), read_direction=Options.Backwards
        )
    ),
    "backwards $all subscription": streams_pb2.ReadReq(
        options=all_read(
            subscription=Options.SubscriptionOptions(), read_direction=Options.Backwards
        )
    ),
    "unknown direction": streams_pb2.ReadReq(options=all_read(read_direction=7)),
    "no revision option": streams_pb2.ReadReq(
        options=read_options(
            stream=Options.StreamOptions(stream_identifier=stream_id("s")),
            count=1,
            no_filter=empty(),
        )
    ),
    "no $all position option": streams_pb2.ReadReq(
        options=read_options(all=Options.AllOptions(), count=1, no_filter=empty())
    ),
    "bad regex": streams_pb2.ReadReq(
        options=all_read(
            filter=Options.FilterOptions(
                event_type=Options.FilterOptions.Expression(regex="(unclosed"), max=1
            )
        )
    ),
    "filter without expression": streams_pb2.ReadReq(
        options=all_read(filter=Options.FilterOptions(max=1))
    ),
    "filter without window": streams_pb2.ReadReq(
        options=all_read(
            filter=Options.FilterOptions(event_type=Options.FilterOptions.Expression(regex="x"))
        )
    ),
    "empty stream name": streams_pb2.ReadReq(options=stream_read("")),
    "stream name not UTF-8": streams_pb2.ReadReq(options=stream_read(b"\xff\xfe")),
}


@pytest.mark.parametrize("case", list(INVALID_READS))
def test_invalid_reads(
    case: str, stub: streams_pb2_grpc.StreamsStub, client: KurrentDBClient
) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        list(stub.Read(INVALID_READS[case], timeout=WAIT))
    expect_status(failure.value, grpc.StatusCode.INVALID_ARGUMENT)
    check_serving(client)


def test_combination_message(stub: streams_pb2_grpc.StreamsStub) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        read(stub, stream_read(subscription=Options.SubscriptionOptions(), read_direction=1))
    assert failure.value.details() == (
        "The combination of (Stream, Subscription, Backwards, NoFilter) is invalid."
    )


INVALID_APPENDS = {
    "no messages": [],
    "proposed message first": [streams_pb2.AppendReq(proposed_message=proposed())],
    "options twice": [append_options(), append_options()],
    "no expectation": [
        streams_pb2.AppendReq(
            options=streams_pb2.AppendReq.Options(stream_identifier=stream_id("s"))
        )
    ],
    "stream name not UTF-8": [
        append_options(b"\xff"),
        streams_pb2.AppendReq(proposed_message=proposed()),
    ],
    "empty stream name": [append_options(""), streams_pb2.AppendReq(proposed_message=proposed())],
    "$all": [append_options("$all"), streams_pb2.AppendReq(proposed_message=proposed())],
    "bad uuid": [
        append_options(),
        streams_pb2.AppendReq(proposed_message=proposed(id=shared_pb2.UUID(string="nope"))),
    ],
    "no uuid": [append_options(), streams_pb2.AppendReq(proposed_message=proposed(id=None))],
    "empty event type": [
        append_options(),
        streams_pb2.AppendReq(
            proposed_message=proposed(metadata={"type": "", "content-type": "application/json"})
        ),
    ],
    "revision out of range": [
        append_options(revision=2**64 - 1),
        streams_pb2.AppendReq(proposed_message=proposed()),
    ],
}


@pytest.mark.parametrize("case", list(INVALID_APPENDS))
def test_invalid_appends(
    case: str, stub: streams_pb2_grpc.StreamsStub, client: KurrentDBClient
) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        stub.Append(iter(INVALID_APPENDS[case]), timeout=WAIT)
    expect_status(failure.value, grpc.StatusCode.INVALID_ARGUMENT)
    check_serving(client)


def test_missing_required_metadata(stub: streams_pb2_grpc.StreamsStub) -> None:
    message = proposed(metadata={"type": "T"})
    with pytest.raises(grpc.RpcError) as failure:
        stub.Append(iter([append_options(), streams_pb2.AppendReq(proposed_message=message)]))
    error = expect_status(failure.value, grpc.StatusCode.INVALID_ARGUMENT)
    trailers = dict(error.trailing_metadata())  # type: ignore[attr-defined]
    assert trailers["exception"] == "missing-required-metadata-property"
    assert failure.value.details() == "Required Metadata Property 'content-type' is missing"


def test_maximum_append_size(stub: streams_pb2_grpc.StreamsStub, client: KurrentDBClient) -> None:
    big = [streams_pb2.AppendReq(proposed_message=proposed(data=b"x" * 600_000)) for _ in range(2)]
    with pytest.raises(grpc.RpcError) as failure:
        stub.Append(iter([append_options(), *big]), timeout=WAIT)
    error = expect_status(failure.value, grpc.StatusCode.INVALID_ARGUMENT)
    assert failure.value.details() == "Maximum Append Size of 1048576 Exceeded."
    assert dict(error.trailing_metadata())["exception"] == "maximum-append-size-exceeded"  # type: ignore[attr-defined]
    with pytest.raises(MaximumAppendSizeExceededError):
        client.append_to_stream(
            "big",
            events=[NewEvent(type="T", data=b"x" * 1_100_000)],
            current_version=StreamState.ANY,
        )
    check_serving(client)


def test_error_trailers(stub: streams_pb2_grpc.StreamsStub, client: KurrentDBClient) -> None:
    client.append_to_stream(
        "s", events=NewEvent(type="T", data=b"{}"), current_version=StreamState.ANY
    )
    delete = streams_pb2.DeleteReq(
        options=streams_pb2.DeleteReq.Options(stream_identifier=stream_id("s"), revision=5)
    )
    with pytest.raises(grpc.RpcError) as conflict:
        stub.Delete(delete, timeout=WAIT)
    error = expect_status(conflict.value, grpc.StatusCode.FAILED_PRECONDITION)
    assert conflict.value.details() == (
        "Delete failed due to WrongExpectedVersion. Stream: s, Expected version: 5, "
        "Actual version: 0"
    )
    trailers = dict(error.trailing_metadata())  # type: ignore[attr-defined]
    assert trailers == {
        "exception": "wrong-expected-version",
        "stream-name": "s",
        "expected-version": "5",
        "actual-version": "0",
    }
    client.tombstone_stream("s", current_version=StreamState.ANY)
    with pytest.raises(grpc.RpcError) as deleted:
        read(stub, stream_read("s"))
    error = expect_status(deleted.value, grpc.StatusCode.FAILED_PRECONDITION)
    assert deleted.value.details() == "Event stream 's' is deleted."
    assert dict(error.trailing_metadata())["exception"] == "stream-deleted"  # type: ignore[attr-defined]
    # Reads of a missing stream: a StreamNotFound message, not an error.
    (only,) = read(stub, stream_read("missing"))
    assert only.WhichOneof("content") == "stream_not_found"
    assert only.stream_not_found.stream_identifier.stream_name == b"missing"
    # Append answers a wrong expectation in its response, with the legacy fields too.
    response = stub.Append(
        iter([append_options("t", revision=3), streams_pb2.AppendReq(proposed_message=proposed())])
    )
    wrong = response.wrong_expected_version
    assert wrong.WhichOneof("current_revision_option") == "current_no_stream"
    assert wrong.WhichOneof("current_revision_option_20_6_0") == "no_stream_20_6_0"
    assert wrong.expected_revision == 3 and wrong.expected_revision_20_6_0 == 3


def test_batch_append_multiplexed(stub: streams_pb2_grpc.StreamsStub) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()

    def options(name: str, **fields: object) -> streams_pb2.BatchAppendReq.Options:
        return streams_pb2.BatchAppendReq.Options(stream_identifier=stream_id(name), **fields)  # type: ignore[arg-type]

    def message() -> streams_pb2.BatchAppendReq.ProposedMessage:
        return streams_pb2.BatchAppendReq.ProposedMessage(
            id=shared_pb2.UUID(string=str(uuid.uuid4())),
            metadata={"type": "T", "content-type": "application/json"},
            data=b"{}",
        )

    requests = [
        streams_pb2.BatchAppendReq(
            correlation_id=shared_pb2.UUID(string=str(first)),
            options=options("a", no_stream=empty_pb2.Empty()),
            proposed_messages=[message()],
        ),
        streams_pb2.BatchAppendReq(
            correlation_id=shared_pb2.UUID(string=str(second)),
            options=options("b", stream_position=4),
            proposed_messages=[message()],
            is_final=True,
        ),
        streams_pb2.BatchAppendReq(
            correlation_id=shared_pb2.UUID(string=str(first)),
            proposed_messages=[message(), message()],
            is_final=True,
        ),
    ]
    responses = {
        uuid.UUID(r.correlation_id.string): r
        for r in stub.BatchAppend(iter(requests), timeout=WAIT)
    }
    assert set(responses) == {first, second}
    ok = responses[first]
    assert ok.WhichOneof("result") == "success"
    assert ok.success.current_revision == 2  # three events from two chunks
    assert ok.WhichOneof("expected_stream_position") == "no_stream"
    failed = responses[second]
    assert failed.WhichOneof("result") == "error"
    assert failed.error.code == grpc.StatusCode.ALREADY_EXISTS.value[0]
    assert failed.error.details.type_url == (
        "type.googleapis.com/event_store.client.WrongExpectedVersion"
    )
    detail = shared_pb2.WrongExpectedVersion()
    failed.error.details.Unpack(detail)
    assert detail.WhichOneof("current_stream_revision_option") == "current_no_stream"
    assert detail.expected_stream_position == 4
    assert failed.stream_position == 4


def test_batch_append_bad_batches(
    stub: streams_pb2_grpc.StreamsStub, client: KurrentDBClient
) -> None:
    no_options = streams_pb2.BatchAppendReq(
        correlation_id=shared_pb2.UUID(string=str(uuid.uuid4())), is_final=True
    )
    (response,) = stub.BatchAppend(iter([no_options]), timeout=WAIT)
    assert response.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert response.error.details.type_url.endswith("event_store.client.BadRequest")
    with pytest.raises(grpc.RpcError) as failure:
        list(stub.BatchAppend(iter([streams_pb2.BatchAppendReq(is_final=True)]), timeout=WAIT))
    expect_status(failure.value, grpc.StatusCode.INVALID_ARGUMENT)
    check_serving(client)


@pytest.mark.parametrize("method", ["Delete", "Tombstone"])
def test_invalid_deletes(
    method: str, stub: streams_pb2_grpc.StreamsStub, client: KurrentDBClient
) -> None:
    request_type = streams_pb2.DeleteReq if method == "Delete" else streams_pb2.TombstoneReq
    for request in (
        request_type(),
        request_type(options=request_type.Options(stream_identifier=stream_id("s"))),
        request_type(options=request_type.Options(stream_identifier=stream_id(""), any=empty())),
        request_type(
            options=request_type.Options(stream_identifier=stream_id("$all"), any=empty())
        ),
    ):
        with pytest.raises(grpc.RpcError) as failure:
            getattr(stub, method)(request, timeout=WAIT)
        expect_status(failure.value, grpc.StatusCode.INVALID_ARGUMENT)
    check_serving(client)


def test_structured_uuids(stub: streams_pb2_grpc.StreamsStub) -> None:
    event_id = uuid.UUID("f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f")
    msb = int.from_bytes(event_id.bytes[:8], "big", signed=True)
    lsb = int.from_bytes(event_id.bytes[8:], "big", signed=True)
    structured = shared_pb2.UUID(
        structured=shared_pb2.UUID.Structured(most_significant_bits=msb, least_significant_bits=lsb)
    )
    stub.Append(
        iter([append_options("u"), streams_pb2.AppendReq(proposed_message=proposed(id=structured))])
    )
    options = stream_read("u")
    options.uuid_option.structured.CopyFrom(empty())
    (response,) = read(stub, options)
    assert response.event.event.id == structured
    options.uuid_option.string.CopyFrom(empty())
    (response,) = read(stub, options)
    assert response.event.event.id.string == str(event_id)
    assert response.event.WhichOneof("position") == "commit_position"


def raw_read(channel: grpc.Channel, payload: bytes) -> grpc.RpcError:
    raw = channel.unary_stream(
        "/event_store.client.streams.Streams/Read",
        request_serializer=lambda value: value,
        response_deserializer=lambda value: value,
    )
    with pytest.raises(grpc.RpcError) as failure:
        list(raw(payload, timeout=WAIT))
    return failure.value


def test_undecodable_bytes_keep_the_server_serving(
    channel: grpc.Channel, client: KurrentDBClient
) -> None:
    error = raw_read(channel, b"\xff\xff\xff\xff")
    assert error.code() != grpc.StatusCode.OK  # type: ignore[attr-defined]
    check_serving(client)


def test_undecodable_bytes_are_invalid_argument(channel: grpc.Channel) -> None:
    error = raw_read(channel, b"\xff\xff\xff\xff")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]


def test_out_of_range_starts(stub: streams_pb2_grpc.StreamsStub, client: KurrentDBClient) -> None:
    client.append_to_stream(
        "s", events=NewEvent(type="T", data=b"{}"), current_version=StreamState.ANY
    )
    huge = 2**64 - 1
    for options in (
        stream_read(
            stream=Options.StreamOptions(stream_identifier=stream_id("s"), revision=huge),
            subscription=Options.SubscriptionOptions(),
        ),
        all_read(
            all=Options.AllOptions(
                position=Options.Position(commit_position=huge, prepare_position=huge)
            ),
            subscription=Options.SubscriptionOptions(),
        ),
    ):
        call = stub.Read(streams_pb2.ReadReq(options=options), timeout=WAIT)
        kinds = [next(call).WhichOneof("content"), next(call).WhichOneof("content")]
        assert kinds == ["confirmation", "caught_up"]
        call.cancel()
    for options in (
        stream_read(stream=Options.StreamOptions(stream_identifier=stream_id("s"), revision=huge)),
        stream_read(
            stream=Options.StreamOptions(stream_identifier=stream_id("s"), revision=huge),
            read_direction=Options.Backwards,
        ),
        all_read(all=Options.AllOptions(position=Options.Position(commit_position=huge))),
        all_read(
            all=Options.AllOptions(position=Options.Position(commit_position=huge)),
            read_direction=Options.Backwards,
        ),
        all_read(count=huge),
    ):
        assert len(read(stub, options)) <= 1
    check_serving(client)


def test_non_ascii_stream_names_in_errors(
    stub: streams_pb2_grpc.StreamsStub, client: KurrentDBClient
) -> None:
    name = "straße-ü"
    client.append_to_stream(
        name, events=NewEvent(type="T", data=b"{}"), current_version=StreamState.ANY
    )
    delete = streams_pb2.DeleteReq(
        options=streams_pb2.DeleteReq.Options(stream_identifier=stream_id(name), revision=5)
    )
    with pytest.raises(grpc.RpcError) as conflict:
        stub.Delete(delete, timeout=WAIT)
    error = expect_status(conflict.value, grpc.StatusCode.FAILED_PRECONDITION)
    assert f"Stream: {name}," in conflict.value.details()
    assert dict(error.trailing_metadata())["stream-name"] == "stra%C3%9Fe-%C3%BC"  # type: ignore[attr-defined]
    client.tombstone_stream(name, current_version=StreamState.ANY)
    with pytest.raises(StreamIsDeletedError):
        client.get_stream(name)
