"""Gossip.Read, ServerFeatures.GetSupportedMethods and the UNIMPLEMENTED fallback, over
real sockets with the real kurrentdbclient and raw gRPC stubs."""

from __future__ import annotations

import time
import uuid
from typing import Any

import grpc
import pytest
from kurrentdbclient import KurrentDBClient
from kurrentdbclient.exceptions import GrpcError

from evstore.server._generated import (
    gossip_pb2,
    gossip_pb2_grpc,
    serverfeatures_pb2_grpc,
    shared_pb2,
)
from evstore.server.app import BackgroundServer, _method_handlers, _ServiceSpec
from evstore.server.gossip import GossipServicer

from .conftest import MakeClient, StartServer


def _channel(server: BackgroundServer) -> grpc.Channel:
    return grpc.insecure_channel(f"127.0.0.1:{server.port}")


def _gossip(server: BackgroundServer) -> gossip_pb2.ClusterInfo:
    with _channel(server) as channel:
        return gossip_pb2_grpc.GossipStub(channel).Read(shared_pb2.Empty(), timeout=10)


def test_read_gossip_reports_one_leader(server: BackgroundServer, client: KurrentDBClient) -> None:
    [member] = client.read_gossip()
    assert member.state == "NODE_STATE_LEADER"
    assert (member.address, member.port) == ("127.0.0.1", server.port)


def test_gossip_member_is_alive_with_a_stable_instance_id(server: BackgroundServer) -> None:
    before = time.time()
    first, second = _gossip(server), _gossip(server)
    [member] = first.members
    assert member.is_alive
    assert member.state == gossip_pb2.MemberInfo.Leader
    structured = member.instance_id.structured
    raw = structured.most_significant_bits.to_bytes(8, "big", signed=True)
    raw += structured.least_significant_bits.to_bytes(8, "big", signed=True)
    assert uuid.UUID(bytes=raw) == server.server.state.instance_id
    assert second.members[0].instance_id == member.instance_id
    # .NET ticks (100 ns) since the Unix epoch, taken at the call.
    assert before - 1 <= member.time_stamp / 10_000_000 <= time.time() + 1


def test_instance_id_is_new_for_each_run(start_server: StartServer, sqlite_url: str) -> None:
    first = start_server(sqlite_url)
    first_id = _gossip(first).members[0].instance_id
    first.stop()
    second = start_server(sqlite_url)
    assert _gossip(second).members[0].instance_id != first_id


def test_gossip_tells_the_advertised_endpoint(
    start_server: StartServer, sqlite_url: str, make_client: MakeClient
) -> None:
    server = start_server(sqlite_url, advertise="events.example.com:1234")
    [member] = make_client(server).read_gossip()
    assert (member.address, member.port) == ("events.example.com", 1234)
    # A host alone keeps the listening port.
    other = start_server(sqlite_url, advertise="node-a")
    [member] = make_client(other).read_gossip()
    assert (member.address, member.port) == ("node-a", other.port)


def test_client_discovers_the_leader_through_gossip(server: BackgroundServer) -> None:
    # Several targets make kurrentdbclient call Gossip.Read and connect to the leader.
    target = f"127.0.0.1:{server.port}"
    client = KurrentDBClient(f"kurrentdb://{target},{target}?tls=false&MaxDiscoverAttempts=2")
    try:
        assert client.connection_target == target
        assert client.read_gossip()[0].port == server.port
    finally:
        client.close()


def _supported(server: BackgroundServer) -> Any:
    with _channel(server) as channel:
        stub = serverfeatures_pb2_grpc.ServerFeaturesStub(channel)
        return stub.GetSupportedMethods(shared_pb2.Empty(), timeout=10)


def test_supported_methods_list_what_is_registered(server: BackgroundServer) -> None:
    answer = _supported(server)
    listed = {(m.service_name, m.method_name) for m in answer.methods}
    registered = {(s.lower(), m.lower()) for s, m in server.server.methods}
    assert listed == registered
    assert ("event_store.client.gossip.gossip", "read") in listed
    assert ("event_store.client.server_features.serverfeatures", "getsupportedmethods") in listed
    assert all(m.service_name == m.service_name.lower() for m in answer.methods)
    assert answer.event_store_server_version
    features = {(m.service_name, m.method_name): list(m.features) for m in answer.methods}
    for (service, method), flags in features.items():
        if service == "event_store.client.persistent_subscriptions.persistentsubscriptions":
            assert flags == ["stream", "all"], method
        elif (service, method) == ("event_store.client.streams.streams", "read"):
            assert flags == ["position", "events"]
        elif (service, method) == ("event_store.client.streams.streams", "batchappend"):
            assert flags == ["deadline_duration"]
        else:
            assert flags == [], (service, method)


def test_every_listed_method_is_served(server: BackgroundServer) -> None:
    """Nothing listed answers UNIMPLEMENTED (a call with an empty body may fail otherwise)."""
    with _channel(server) as channel:
        for method in _supported(server).methods:
            service = next(s for s, m in server.server.methods if s.lower() == method.service_name)
            name = next(m for s, m in server.server.methods if m.lower() == method.method_name)
            path = f"/{service}/{name}"
            call = channel.unary_unary(path)
            try:
                call(b"", timeout=2)
            except grpc.RpcError as exc:
                assert exc.code() != grpc.StatusCode.UNIMPLEMENTED, (path, exc.details())


@pytest.mark.parametrize(
    "path",
    [
        "/event_store.client.users.Users/Create",
        "/event_store.client.operations.Operations/StartScavenge",
        "/event_store.client.streams.Streams/NoSuchMethod",
        "/kurrentdb.protocol.v2.streams.StreamsService/AppendSession",
        "/nothing/at/all",
    ],
)
def test_other_methods_are_unimplemented_by_name(server: BackgroundServer, path: str) -> None:
    with _channel(server) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            channel.unary_unary(path)(b"", timeout=10)
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert path in raised.value.details()
        # Streaming shapes get the same answer.
        with pytest.raises(grpc.RpcError) as raised:
            list(channel.stream_stream(path)(iter([b"", b""]), timeout=10))
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert path in raised.value.details()


def test_kurrentdbclient_sees_unimplemented_projections(client: KurrentDBClient) -> None:
    with pytest.raises(GrpcError) as raised:
        client.get_projection_statistics(name="by-category")
    assert "event_store.client.projections.Projections/Statistics" in str(raised.value)
    # The server keeps serving.
    assert client.read_gossip()


def test_only_overridden_methods_are_registered() -> None:
    """A servicer method left to the generated stub is not registered (so UNIMPLEMENTED)."""

    class Partial(GossipServicer):
        pass

    class Bare(gossip_pb2_grpc.GossipServicer):  # type: ignore[misc]
        pass

    spec = _ServiceSpec("event_store.client.gossip.Gossip", gossip_pb2_grpc.GossipServicer)
    assert set(_method_handlers(spec, Partial.__new__(Partial))) == {"Read"}
    assert _method_handlers(spec, Bare()) == {}
