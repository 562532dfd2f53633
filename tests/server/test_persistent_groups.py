"""PersistentSubscriptions management over gRPC: Create, Update, Delete, GetInfo, List,
ReplayParked and RestartSubsystem, with the real kurrentdbclient and with raw calls for
the exact status codes, messages and ``exception`` trailers."""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Iterator
from uuid import UUID, uuid4

import grpc
import pytest
from kurrentdbclient import KurrentDBClient, NewEvent, StreamState
from kurrentdbclient.exceptions import AlreadyExistsError, InternalError, NotFoundError

from evstore.server._generated import persistent_pb2 as pb
from evstore.server._generated import persistent_pb2_grpc as pb_grpc
from evstore.server._generated import shared_pb2
from evstore.server.app import BackgroundServer
from evstore.server.groups import CONFIG_EVENT_TYPE, CONFIG_STREAM
from tests.server.conftest import MakeClient, StartServer

BATCH_SIZE_REASON = (
    "Specified argument was out of the range of valid values. "
    "(Parameter 'ReadBatchSize may not be greater than or equal to BufferSize')"
)


@pytest.fixture
def stub(server: BackgroundServer) -> Iterator[pb_grpc.PersistentSubscriptionsStub]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield pb_grpc.PersistentSubscriptionsStub(channel)


def _stream(name: str) -> shared_pb2.StreamIdentifier:
    return shared_pb2.StreamIdentifier(stream_name=name.encode())


def _settings(**overrides: object) -> pb.CreateReq.Settings:
    values: dict[str, object] = {
        "max_retry_count": 10,
        "min_checkpoint_count": 10,
        "max_checkpoint_count": 1000,
        "max_subscriber_count": 5,
        "live_buffer_size": 500,
        "read_batch_size": 20,
        "history_buffer_size": 500,
        "message_timeout_ms": 30_000,
        "checkpoint_after_ms": 2_000,
        "consumer_strategy": "RoundRobin",
    }
    values.update(overrides)
    return pb.CreateReq.Settings(**values)  # type: ignore[arg-type]


def _create_stream_req(stream: str, group: str, **settings: object) -> pb.CreateReq:
    return pb.CreateReq(
        options=pb.CreateReq.Options(
            stream=pb.CreateReq.StreamOptions(
                stream_identifier=_stream(stream), start=shared_pb2.Empty()
            ),
            group_name=group,
            settings=_settings(**settings),
        )
    )


def _error(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    return info.value


def _trailers(error: grpc.RpcError) -> dict[str, str]:
    return {key: value for key, value in error.trailing_metadata()}  # type: ignore[attr-defined]


def test_stream_group_lifecycle(client: KurrentDBClient) -> None:
    assert client.list_subscriptions() == []
    with pytest.raises(NotFoundError):
        client.get_subscription_info("g", "orders")

    client.create_subscription_to_stream("g", "orders")
    info = client.get_subscription_info("g", "orders")
    assert (info.event_source, info.group_name, info.status) == ("orders", "g", "Live")
    # kurrentdbclient's defaults, as sent.
    assert info.start_from == "0"
    assert info.consumer_strategy == "DispatchToSingle"
    assert info.message_timeout == 30.0
    assert info.checkpoint_after == 2.0
    assert (info.max_retry_count, info.min_checkpoint_count, info.max_checkpoint_count) == (
        10,
        10,
        1000,
    )
    assert info.max_subscriber_count == 5
    assert (info.live_buffer_size, info.read_batch_size, info.history_buffer_size) == (
        500,
        200,
        500,
    )
    assert info.resolve_links is False and info.extra_statistics is False
    assert info.connections == [] and info.parked_message_count == 0

    client.update_subscription_to_stream(
        "g",
        "orders",
        resolve_links=True,
        consumer_strategy="RoundRobin",
        message_timeout=15,
        max_retry_count=5,
        min_checkpoint_count=7,
        max_checkpoint_count=12,
        checkpoint_after=1,
        max_subscriber_count=10,
        live_buffer_size=300,
        read_batch_size=250,
        history_buffer_size=400,
        extra_statistics=True,
    )
    info = client.get_subscription_info("g", "orders")
    assert info.start_from == "0"
    assert info.resolve_links is True and info.extra_statistics is True
    assert info.consumer_strategy == "RoundRobin"
    assert (info.message_timeout, info.checkpoint_after) == (15.0, 1.0)
    assert (info.max_retry_count, info.min_checkpoint_count, info.max_checkpoint_count) == (
        5,
        7,
        12,
    )
    assert (info.live_buffer_size, info.read_batch_size, info.history_buffer_size) == (
        300,
        250,
        400,
    )
    assert info.max_subscriber_count == 10

    client.update_subscription_to_stream("g", "orders", from_end=True)
    assert client.get_subscription_info("g", "orders").start_from == "-1"
    client.update_subscription_to_stream("g", "orders")  # re-sends "from end"
    assert client.get_subscription_info("g", "orders").start_from == "-1"
    client.update_subscription_to_stream("g", "orders", stream_position=7)
    assert client.get_subscription_info("g", "orders").start_from == "7"
    client.update_subscription_to_stream("g", "orders", from_end=False)
    assert client.get_subscription_info("g", "orders").start_from == "0"

    [listed] = client.list_subscriptions_to_stream("orders")
    assert (listed.event_source, listed.group_name) == ("orders", "g")
    assert client.list_subscriptions_to_stream("other") == []

    client.delete_subscription("g", "orders")
    assert client.list_subscriptions() == []
    with pytest.raises(NotFoundError):
        client.delete_subscription("g", "orders")
    with pytest.raises(NotFoundError):
        client.update_subscription_to_stream("g", "orders")


def test_all_group_lifecycle(client: KurrentDBClient) -> None:
    client.create_subscription_to_all("a1")
    client.create_subscription_to_all("a2", from_end=True)
    position = client.append_to_stream(
        "s", current_version=StreamState.NO_STREAM, events=NewEvent(type="T", data=b"{}")
    )
    client.create_subscription_to_all("a3", commit_position=position)
    client.create_subscription_to_stream("s1", "s")

    assert client.get_subscription_info("a1").start_from == "C:0/P:0"
    assert client.get_subscription_info("a2").start_from == "C:-1/P:-1"
    assert client.get_subscription_info("a3").start_from == f"C:{position}/P:{position}"
    assert client.get_subscription_info("a1").event_source == "$all"

    client.update_subscription_to_all("a1", max_retry_count=3, consumer_strategy="Pinned")
    info = client.get_subscription_info("a1")
    assert (info.start_from, info.max_retry_count, info.consumer_strategy) == (
        "C:0/P:0",
        3,
        "Pinned",
    )
    client.update_subscription_to_all("a3")  # kurrentdbclient re-sends the position
    assert client.get_subscription_info("a3").start_from == f"C:{position}/P:{position}"

    everything = client.list_subscriptions()
    assert sorted((s.event_source, s.group_name) for s in everything) == [
        ("$all", "a1"),
        ("$all", "a2"),
        ("$all", "a3"),
        ("s", "s1"),
    ]
    assert len(client.list_subscriptions_to_stream("$all")) == 3

    for group in ("a1", "a2", "a3"):
        client.delete_subscription(group)
    with pytest.raises(NotFoundError):
        client.get_subscription_info("a1")
    assert [s.group_name for s in client.list_subscriptions()] == ["s1"]


def test_create_errors(client: KurrentDBClient) -> None:
    client.create_subscription_to_all("dup")
    with pytest.raises(AlreadyExistsError):
        client.create_subscription_to_all("dup")
    client.create_subscription_to_stream("dup", "s")  # another stream: another group
    with pytest.raises(AlreadyExistsError):
        client.create_subscription_to_stream("dup", "s")

    with pytest.raises(InternalError, match="ReadBatchSize may not be greater"):
        client.create_subscription_to_all("small", history_buffer_size=100)
    with pytest.raises(InternalError, match="Consumer strategy Nope does not exist"):
        client.create_subscription_to_all("strategy", consumer_strategy="Nope")  # type: ignore[call-overload]
    with pytest.raises(InternalError, match="commit position must be less than or equal"):
        client.create_subscription_to_all("future", commit_position=10**9)
    assert {s.group_name for s in client.list_subscriptions()} == {"dup"}

    client.create_subscription_to_all("small")
    with pytest.raises(InternalError, match="ReadBatchSize may not be greater"):
        client.update_subscription_to_all("small", history_buffer_size=100)
    assert client.get_subscription_info("small").history_buffer_size == 500


def test_status_codes_messages_and_trailers(
    stub: pb_grpc.PersistentSubscriptionsStub,
) -> None:
    stub.Create(_create_stream_req("s", "g"))

    error = _error(lambda: stub.Create(_create_stream_req("s", "g")))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS  # type: ignore[attr-defined]
    assert error.details() == "Subscription group g on stream s exists."  # type: ignore[attr-defined]
    assert _trailers(error) == {
        "exception": "persistent-subscription-exists",
        "stream-name": "s",
        "group-name": "g",
    }

    error = _error(lambda: stub.Create(_create_stream_req("s", "h", history_buffer_size=20)))
    assert error.code() == grpc.StatusCode.INTERNAL  # type: ignore[attr-defined]
    assert error.details() == f"Subscription group h on stream s failed: '{BATCH_SIZE_REASON}'"  # type: ignore[attr-defined]
    assert _trailers(error) == {
        "exception": "persistent-subscription-failed",
        "stream-name": "s",
        "group-name": "h",
        "reason": BATCH_SIZE_REASON,
    }

    # The existence check comes before the buffer check, as in KurrentDB.
    error = _error(lambda: stub.Create(_create_stream_req("s", "g", history_buffer_size=20)))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS  # type: ignore[attr-defined]

    # The deprecated enum names the strategy when the string is empty.
    stub.Create(_create_stream_req("s", "enum", consumer_strategy="", named_consumer_strategy=2))
    info = stub.GetInfo(
        pb.GetInfoReq(
            options=pb.GetInfoReq.Options(stream_identifier=_stream("s"), group_name="enum")
        )
    ).subscription_info
    assert info.named_consumer_strategy == "Pinned"

    error = _error(lambda: stub.Create(_create_stream_req("$all", "x")))
    assert error.code() == grpc.StatusCode.INTERNAL  # type: ignore[attr-defined]
    assert "only supported over gRPC" in error.details()  # type: ignore[attr-defined]

    missing = pb.GetInfoReq(
        options=pb.GetInfoReq.Options(all=shared_pb2.Empty(), group_name="nope")
    )
    error = _error(lambda: stub.GetInfo(missing))
    assert error.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    assert error.details() == "Subscription group nope on stream $all does not exist."  # type: ignore[attr-defined]
    assert _trailers(error) == {
        "exception": "persistent-subscription-does-not-exist",
        "stream-name": "$all",
        "group-name": "nope",
    }

    for call in (
        lambda: stub.Delete(
            pb.DeleteReq(options=pb.DeleteReq.Options(all=shared_pb2.Empty(), group_name="nope"))
        ),
        lambda: stub.ReplayParked(
            pb.ReplayParkedReq(
                options=pb.ReplayParkedReq.Options(
                    all=shared_pb2.Empty(), group_name="nope", no_limit=shared_pb2.Empty()
                )
            )
        ),
    ):
        error = _error(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]

    error = _error(
        lambda: stub.List(
            pb.ListReq(
                options=pb.ListReq.Options(
                    list_for_stream=pb.ListReq.StreamOption(stream=_stream("none"))
                )
            )
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    assert error.details() == "Subscription group  on stream none does not exist."  # type: ignore[attr-defined]

    assert stub.RestartSubsystem(shared_pb2.Empty()) == shared_pb2.Empty()


def test_malformed_requests_are_invalid_arguments(
    stub: pb_grpc.PersistentSubscriptionsStub, client: KurrentDBClient
) -> None:
    no_start = pb.CreateReq(
        options=pb.CreateReq.Options(
            stream=pb.CreateReq.StreamOptions(stream_identifier=_stream("s")),
            group_name="g",
            settings=_settings(),
        )
    )
    negative = _create_stream_req("s", "g", max_retry_count=-1)
    no_group = _create_stream_req("s", "")
    bad_utf8 = pb.GetInfoReq(
        options=pb.GetInfoReq.Options(
            stream_identifier=shared_pb2.StreamIdentifier(stream_name=b"\xff"), group_name="g"
        )
    )
    no_source = pb.GetInfoReq(options=pb.GetInfoReq.Options(group_name="g"))
    bad_regex = pb.CreateReq(
        options=pb.CreateReq.Options(
            all=pb.CreateReq.AllOptions(
                start=shared_pb2.Empty(),
                filter=pb.CreateReq.AllOptions.FilterOptions(
                    event_type=pb.CreateReq.AllOptions.FilterOptions.Expression(regex="("),
                    max=10,
                ),
            ),
            group_name="g",
            settings=_settings(),
        )
    )
    for call in (
        lambda: stub.Create(no_start),
        lambda: stub.Create(negative),
        lambda: stub.Create(no_group),
        lambda: stub.Create(bad_regex),
        lambda: stub.GetInfo(bad_utf8),
        lambda: stub.GetInfo(no_source),
        lambda: stub.List(pb.ListReq()),
    ):
        error = _error(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error  # type: ignore[attr-defined]

    # A Read whose first message is not the options.
    stub.Create(_create_stream_req("s", "g"))
    ack_first = iter([pb.ReadReq(ack=pb.ReadReq.Ack(ids=[shared_pb2.UUID(string="x")]))])
    error = _error(lambda: list(stub.Read(ack_first)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    zero_buffer = iter(
        [
            pb.ReadReq(
                options=pb.ReadReq.Options(
                    stream_identifier=_stream("s"), group_name="g", buffer_size=0
                )
            )
        ]
    )
    error = _error(lambda: list(stub.Read(zero_buffer)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]

    # The server keeps serving.
    assert [s.group_name for s in client.list_subscriptions()] == ["g"]


def test_groups_are_stored_in_the_config_stream(
    client: KurrentDBClient, server: BackgroundServer
) -> None:
    client.create_subscription_to_stream("g1", "orders", max_retry_count=4)
    client.create_subscription_to_all("g2", filter_include=["Order.*"])
    client.delete_subscription("g1", "orders")

    events = client.get_stream(CONFIG_STREAM)
    assert [e.type for e in events] == [CONFIG_EVENT_TYPE] * 3
    latest = json.loads(events[-1].data)
    assert [(entry["stream"], entry["group"]) for entry in latest["entries"]] == [("$all", "g2")]
    assert latest["entries"][0]["filter"] == {
        "on": "event_type",
        "regex": "^Order.*$",
        "prefixes": [],
    }


def test_groups_survive_a_restart_and_are_shared_by_servers(
    start_server: StartServer, sqlite_url: str, make_client: MakeClient
) -> None:
    first = start_server(sqlite_url)
    second = start_server(sqlite_url)  # the same database, at the same time
    a, b = make_client(first), make_client(second)

    a.create_subscription_to_stream("g", "orders", max_retry_count=4)
    assert b.get_subscription_info("g", "orders").max_retry_count == 4
    with pytest.raises(AlreadyExistsError):
        b.create_subscription_to_stream("g", "orders")
    # Changes from both servers interleave without losing one.
    for index in range(5):
        a.create_subscription_to_all(f"a{index}")
        b.create_subscription_to_all(f"b{index}")
    b.update_subscription_to_stream("g", "orders", max_retry_count=6)

    first.stop()
    second.stop()
    third = start_server(sqlite_url)
    c = make_client(third)
    names = sorted(s.group_name for s in c.list_subscriptions())
    assert names == sorted(["g", *(f"a{i}" for i in range(5)), *(f"b{i}" for i in range(5))])
    assert c.get_subscription_info("g", "orders").max_retry_count == 6


def test_update_moves_the_start_until_the_group_has_progressed(client: KurrentDBClient) -> None:
    append = [NewEvent(type=t, data=b"{}") for t in "ABC"]
    client.append_events("s", current_version=StreamState.NO_STREAM, events=append)
    client.create_subscription_to_stream("g", "s", min_checkpoint_count=1)
    # Consumed once with nothing acked: the group has no progress yet.
    sub = client.read_subscription_to_stream("g", "s")
    next(sub)
    sub.stop()
    client.update_subscription_to_stream("g", "s", stream_position=1)
    sub = client.read_subscription_to_stream("g", "s", timeout=10)
    b = next(sub)
    assert b.type == "B"
    sub.ack(b)
    sub.ack(next(sub))
    sub.stop()
    # Now it has a checkpoint: a new start no longer applies.
    client.update_subscription_to_stream("g", "s", from_end=False)
    client.append_events("s", current_version=2, events=[NewEvent(type="D", data=b"{}")])
    sub = client.read_subscription_to_stream("g", "s", timeout=10)
    assert next(sub).type == "D"
    sub.stop()


class _Requests:
    """A Read request stream fed from the test."""

    def __init__(self, first: pb.ReadReq) -> None:
        self._queue: queue.Queue[pb.ReadReq | None] = queue.Queue()
        self._queue.put(first)

    def send(self, request: pb.ReadReq | None) -> None:
        self._queue.put(request)

    def __iter__(self) -> Iterator[pb.ReadReq]:
        while (request := self._queue.get(timeout=30)) is not None:
            yield request


def _read_options(stream: str, group: str, *, structured: bool = False) -> pb.ReadReq:
    uuid_option = pb.ReadReq.Options.UUIDOption(
        **{"structured" if structured else "string": shared_pb2.Empty()}
    )
    return pb.ReadReq(
        options=pb.ReadReq.Options(
            stream_identifier=_stream(stream),
            group_name=group,
            buffer_size=10,
            uuid_option=uuid_option,
        )
    )


def test_raw_read_structured_ids_and_bad_acks(
    stub: pb_grpc.PersistentSubscriptionsStub, client: KurrentDBClient
) -> None:
    events = [NewEvent(type=t, data=b"{}") for t in "AB"]
    client.append_events("s", current_version=StreamState.NO_STREAM, events=events)
    stub.Create(_create_stream_req("s", "g", min_checkpoint_count=1))

    requests = _Requests(_read_options("s", "g", structured=True))
    responses = stub.Read(iter(requests), timeout=30)
    assert next(responses).subscription_confirmation.subscription_id == "s::g"
    first, second = next(responses).event, next(responses).event
    assert first.retry_count == 0 and first.WhichOneof("position") == "commit_position"
    assert first.event.id.WhichOneof("value") == "structured"
    msb = first.event.id.structured.most_significant_bits % 2**64
    lsb = first.event.id.structured.least_significant_bits % 2**64
    assert UUID(int=(msb << 64) | lsb) == events[0].id
    assert first.event.stream_revision == 0 and first.event.metadata["type"] == "A"

    # A structured ack works; an unknown id is ignored.
    requests.send(pb.ReadReq(ack=pb.ReadReq.Ack(ids=[first.event.id])))
    requests.send(pb.ReadReq(ack=pb.ReadReq.Ack(ids=[shared_pb2.UUID(string=str(uuid4()))])))
    info_req = pb.GetInfoReq(
        options=pb.GetInfoReq.Options(stream_identifier=_stream("s"), group_name="g")
    )
    wait_until = time.monotonic() + 10
    while stub.GetInfo(info_req).subscription_info.last_checkpointed_event_position != "0":
        assert time.monotonic() < wait_until
        time.sleep(0.05)

    # A malformed id ends the call with INVALID_ARGUMENT; the event goes back to the group.
    requests.send(pb.ReadReq(ack=pb.ReadReq.Ack(ids=[shared_pb2.UUID(string="not-a-uuid")])))
    error = _error(lambda: next(responses))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]

    requests = _Requests(_read_options("s", "g"))
    responses = stub.Read(iter(requests), timeout=30)
    next(responses)
    again = next(responses).event
    assert again.event.id.string == str(events[1].id) == str(UUID(again.event.id.string))
    assert second.event.stream_revision == again.event.stream_revision == 1
    # A nack with an unknown action is refused too.
    requests.send(pb.ReadReq(nack=pb.ReadReq.Nack(ids=[again.event.id], action=9)))  # type: ignore[arg-type]
    error = _error(lambda: next(responses))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    # A second options message too.
    requests = _Requests(_read_options("s", "g"))
    responses = stub.Read(iter(requests), timeout=30)
    next(responses)
    next(responses)
    requests.send(_read_options("s", "g"))
    error = _error(lambda: next(responses))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    requests.send(None)
    assert [s.group_name for s in client.list_subscriptions()] == ["g"]
