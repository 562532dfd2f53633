"""Wire compatibility of evstore's own .proto files with the KurrentDB v1 client protocol.

Every message, enum and service method that kurrentdbclient's generated modules (the real
client the server is tested with) define in the event_store.client packages must exist in
evstore's generated code with the same full name, fields (name, number, cardinality, type,
message or enum type, oneof membership, presence) and methods (streaming flags, request and
response types). Two definitions that agree on all of that encode and decode the same bytes.

The one deliberate difference in names: kurrentdbclient renamed KurrentDB's google.rpc.Status
to kurrentdbclient.status.Status (to coexist with googleapis' copy in the default pool);
evstore keeps KurrentDB's name in a pool of its own. Its shape is compared all the same.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    FieldDescriptor,
    ServiceDescriptor,
)
from kurrentdbclient.protos.google.rpc import code_pb2 as their_code
from kurrentdbclient.protos.v1 import gossip_pb2 as their_gossip
from kurrentdbclient.protos.v1 import persistent_pb2 as their_persistent
from kurrentdbclient.protos.v1 import shared_pb2 as their_shared
from kurrentdbclient.protos.v1 import status_pb2 as their_status
from kurrentdbclient.protos.v1 import streams_pb2 as their_streams

from evstore.server._generated import (
    code_pb2,
    gossip_pb2,
    persistent_pb2,
    serverfeatures_pb2,
    shared_pb2,
    status_pb2,
    streams_pb2,
)
from evstore.server._generated._pool import POOL

ROOT = Path(__file__).resolve().parents[2]

THEIR_MODULES = [their_shared, their_streams, their_persistent, their_gossip]
OUR_MODULES = [shared_pb2, streams_pb2, persistent_pb2, gossip_pb2]

# kurrentdbclient's name for a type -> KurrentDB's (and evstore's) name for it.
RENAMED = {"kurrentdbclient.status.Status": "google.rpc.Status"}


def _messages(descriptor: Descriptor) -> Iterator[Descriptor]:
    yield descriptor
    for nested in descriptor.nested_types:
        yield from _messages(nested)


def _all_messages(modules: list[ModuleType]) -> Iterator[Descriptor]:
    for module in modules:
        for descriptor in module.DESCRIPTOR.message_types_by_name.values():
            yield from _messages(descriptor)


def _all_enums(modules: list[ModuleType]) -> Iterator[EnumDescriptor]:
    yield from (e for m in modules for e in m.DESCRIPTOR.enum_types_by_name.values())
    for message in _all_messages(modules):
        yield from message.enum_types


def _type_name(field: FieldDescriptor) -> str | None:
    named = field.message_type or field.enum_type
    if named is None:
        return None
    return RENAMED.get(named.full_name, named.full_name)


def _field_shape(field: FieldDescriptor) -> tuple[object, ...]:
    """Everything about a field that decides its encoding (and its generated API)."""
    oneof = field.containing_oneof
    return (
        field.name,
        field.number,
        field.type,
        field.is_repeated,
        field.is_packed,
        field.has_presence,
        _type_name(field),
        oneof.name if oneof is not None else None,
        field.json_name,
    )


def _message_shape(descriptor: Descriptor) -> dict[str, object]:
    return {
        "fields": sorted(_field_shape(f) for f in descriptor.fields),
        "oneofs": sorted(
            (o.name, tuple(sorted(f.name for f in o.fields))) for o in descriptor.oneofs
        ),
        "map_entry": descriptor.GetOptions().map_entry,
    }


def _enum_shape(descriptor: EnumDescriptor) -> list[tuple[str, int]]:
    return sorted((v.name, v.number) for v in descriptor.values)


THEIR_MESSAGES = sorted({d.full_name: d for d in _all_messages(THEIR_MODULES)}.items())
THEIR_ENUMS = sorted({d.full_name: d for d in _all_enums(THEIR_MODULES)}.items())
THEIR_SERVICES = [
    service for module in THEIR_MODULES for service in module.DESCRIPTOR.services_by_name.values()
]


def test_the_comparison_covers_the_protocol() -> None:
    # Guards against a comparison that silently compares nothing (e.g. a renamed module).
    names = {name for name, _ in THEIR_MESSAGES}
    assert len(names) >= 100
    assert "event_store.client.streams.ReadReq.Options.FilterOptions.Expression" in names
    assert "event_store.client.persistent_subscriptions.SubscriptionInfo" in names
    assert {s.full_name for s in THEIR_SERVICES} == {
        "event_store.client.streams.Streams",
        "event_store.client.persistent_subscriptions.PersistentSubscriptions",
        "event_store.client.gossip.Gossip",
    }


@pytest.mark.parametrize(("name", "theirs"), THEIR_MESSAGES, ids=[n for n, _ in THEIR_MESSAGES])
def test_message_matches_kurrentdbclient(name: str, theirs: Descriptor) -> None:
    ours = POOL.FindMessageTypeByName(name)
    assert ours.file.package == theirs.file.package
    assert _message_shape(ours) == _message_shape(theirs)


@pytest.mark.parametrize(("name", "theirs"), THEIR_ENUMS, ids=[n for n, _ in THEIR_ENUMS])
def test_enum_matches_kurrentdbclient(name: str, theirs: EnumDescriptor) -> None:
    assert _enum_shape(POOL.FindEnumTypeByName(name)) == _enum_shape(theirs)


@pytest.mark.parametrize("theirs", THEIR_SERVICES, ids=[s.full_name for s in THEIR_SERVICES])
def test_service_matches_kurrentdbclient(theirs: ServiceDescriptor) -> None:
    ours = POOL.FindServiceByName(theirs.full_name)

    def methods(service: ServiceDescriptor) -> list[tuple[object, ...]]:
        return sorted(
            (
                m.name,
                m.client_streaming,
                m.server_streaming,
                m.input_type.full_name,
                m.output_type.full_name,
            )
            for m in service.methods
        )

    assert methods(ours) == methods(theirs)


def test_status_matches_kurrentdb_shape() -> None:
    """BatchAppendResp.error: KurrentDB's Status (Code enum, ONE Any), as the client has it."""
    ours = status_pb2.Status.DESCRIPTOR
    assert ours.full_name == "google.rpc.Status"
    assert _message_shape(ours) == _message_shape(their_status.Status.DESCRIPTOR)
    assert _enum_shape(POOL.FindEnumTypeByName("google.rpc.Code")) == _enum_shape(
        their_code.DESCRIPTOR.enum_types_by_name["Code"]
    )


def test_shapes_kurrentdbclient_does_not_define() -> None:
    """Newer KurrentDB shapes kurrentdbclient 1.3.5 lacks, checked against the protocol notes."""
    size = shared_pb2.MaximumAppendEventSizeExceeded.DESCRIPTOR
    assert [(f.name, f.number, f.type) for f in size.fields] == [
        ("eventId", 1, FieldDescriptor.TYPE_STRING),
        ("proposedEventSize", 2, FieldDescriptor.TYPE_UINT32),
        ("maxAppendEventSize", 3, FieldDescriptor.TYPE_UINT32),
    ]
    methods = serverfeatures_pb2.SupportedMethods.DESCRIPTOR
    assert [(f.name, f.number, f.type, f.is_repeated) for f in methods.fields] == [
        ("methods", 1, FieldDescriptor.TYPE_MESSAGE, True),
        ("event_store_server_version", 2, FieldDescriptor.TYPE_STRING, False),
    ]
    method = serverfeatures_pb2.SupportedMethod.DESCRIPTOR
    assert [(f.name, f.number, f.type, f.is_repeated) for f in method.fields] == [
        ("method_name", 1, FieldDescriptor.TYPE_STRING, False),
        ("service_name", 2, FieldDescriptor.TYPE_STRING, False),
        ("features", 3, FieldDescriptor.TYPE_STRING, True),
    ]
    service = POOL.FindServiceByName("event_store.client.server_features.ServerFeatures")
    [get] = service.methods
    assert (get.name, get.input_type.full_name, get.output_type.full_name) == (
        "GetSupportedMethods",
        "event_store.client.Empty",
        "event_store.client.server_features.SupportedMethods",
    )
    assert not get.client_streaming and not get.server_streaming


def test_bytes_round_trip_through_both_definitions() -> None:
    """A populated message encoded by the client decodes in evstore to the same bytes."""
    request = their_streams.ReadReq()
    options = request.options
    options.all.position.commit_position = 42
    options.all.position.prepare_position = 42
    options.read_direction = their_streams.ReadReq.Options.Backwards
    options.subscription.SetInParent()
    options.filter.event_type.regex = "^(?!\\$)"
    options.filter.event_type.prefix.extend(["a", "b"])
    options.filter.max = 30
    options.filter.checkpointIntervalMultiplier = 5
    options.uuid_option.string.SetInParent()
    wire = request.SerializeToString()
    ours = streams_pb2.ReadReq.FromString(wire)
    assert ours.options.WhichOneof("count_option") == "subscription"
    assert list(ours.options.filter.event_type.prefix) == ["a", "b"]
    assert ours.SerializeToString(deterministic=True) == request.SerializeToString(
        deterministic=True
    )

    response = streams_pb2.BatchAppendResp()
    response.correlation_id.string = "c0ffee00-0000-4000-8000-000000000000"
    response.error.code = code_pb2.ALREADY_EXISTS
    response.error.message = "WrongExpectedVersion"
    detail = shared_pb2.WrongExpectedVersion(current_stream_revision=3)
    detail.expected_no_stream.SetInParent()
    response.error.details.Pack(detail)
    decoded = their_streams.BatchAppendResp.FromString(response.SerializeToString())
    unpacked = their_shared.WrongExpectedVersion()
    assert decoded.error.details.Unpack(unpacked)
    assert unpacked.current_stream_revision == 3
    assert unpacked.WhichOneof("expected_stream_position_option") == "expected_no_stream"


def test_generated_code_is_current() -> None:
    """The committed _generated package is what scripts/gen_protos.py makes of the .protos."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
