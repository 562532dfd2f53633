"""Conversions between the KurrentDB wire messages and evstore's stored events.

Payloads. A client sends ``data`` and ``custom_metadata`` as bytes with a ``content-type``;
evstore stores bytes with flags saying how the library reads them back:

* ``application/json`` data that parses as JSON is stored as the library's JSON (flags 0),
  byte for byte, so :class:`AsyncEventStore` reads it as the decoded value and a client reads
  back exactly the bytes it sent;
* anything else is stored raw (``DATA_RAW``: the library reads ``bytes``); raw data whose
  content type was ``application/json`` (an empty payload, say) also gets
  :data:`JSON_CONTENT`, so it is read back over gRPC as ``application/json`` again;
* ``custom_metadata`` is evstore's event metadata: empty means none, JSON is stored as JSON,
  other bytes raw; ``$correlationId`` / ``$causationId`` in a JSON object fill evstore's
  correlation and causation ids.

Events appended by the library map back the same way: JSON data is ``application/json``,
``bytes`` data ``application/octet-stream``, and ``$metadata`` events are always JSON.

Revisions are ``version - 1``; commit and prepare positions are evstore's global position;
``created`` is the append time in 100 ns ticks since the Unix epoch.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from evstore.backends.base import DATA_RAW, JSON_CONTENT, METADATA_RAW, EventRow, NewEvent
from evstore.backends.rules import METADATA_EVENT_TYPE
from evstore.server._generated import shared_pb2, streams_pb2
from evstore.server.dialect import INT64_MAX, TOMBSTONE_EVENT_TYPE, BadRequest

__all__ = [
    "CONTENT_JSON",
    "CONTENT_OCTET_STREAM",
    "JSON_CONTENT",
    "LINK_EVENT_TYPE",
    "EventEncoder",
    "created_ticks",
    "structured_uuid",
    "uuid_from_message",
    "uuid_message",
]

CONTENT_JSON = "application/json"
CONTENT_OCTET_STREAM = "application/octet-stream"
LINK_EVENT_TYPE = "$>"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT64_SIGN = 2**63
_UINT64 = 2**64
# Links carry no id of their own in evstore; a name-based UUID gives each link a stable one.
_LINK_NAMESPACE = uuid.UUID("0b7c5d3e-4f7a-5e55-9a47-6c696e6b6964")


def created_ticks(created_at: datetime) -> int:
    """``created_at`` as .NET ticks (100 ns) since the Unix epoch."""
    delta = created_at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def structured_uuid(value: UUID) -> tuple[int, int]:
    """The RFC 4122 bytes of ``value`` as two signed big-endian int64 halves (Java's
    most/least significant bits)."""
    number = value.int
    msb, lsb = number >> 64, number & (_UINT64 - 1)
    if msb >= _INT64_SIGN:
        msb -= _UINT64
    if lsb >= _INT64_SIGN:
        lsb -= _UINT64
    return msb, lsb


def uuid_from_message(message: shared_pb2.UUID) -> UUID:
    """The UUID a message holds, in either form.

    Raises:
        BadRequest: no value, or a malformed string.
    """
    form = message.WhichOneof("value")
    if form == "string":
        try:
            return UUID(message.string)
        except ValueError:
            raise BadRequest(f"invalid UUID {message.string!r}") from None
    if form == "structured":
        msb = message.structured.most_significant_bits % _UINT64
        lsb = message.structured.least_significant_bits % _UINT64
        return UUID(int=(msb << 64) | lsb)
    raise BadRequest("a UUID is missing")


def uuid_message(value: UUID, *, structured: bool) -> shared_pb2.UUID:
    """``value`` in the form the client asked for."""
    if structured:
        msb, lsb = structured_uuid(value)
        return shared_pb2.UUID(
            structured=shared_pb2.UUID.Structured(
                most_significant_bits=msb, least_significant_bits=lsb
            )
        )
    return shared_pb2.UUID(string=str(value))


def _as_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode()
    return bytes(value)


def _optional_uuid(value: Any) -> UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return UUID(value)
    except ValueError:
        return None


class EventEncoder:
    """Turns proposed messages into evstore events and stored rows into read messages,
    for one store.

    Args:
        json_native: the store's serializer writes JSON (so JSON bytes can be stored as
            the library's own JSON).
        binary: the backend stores raw bytes (not PostgreSQL's ``jsonb`` columns).
    """

    def __init__(self, *, json_native: bool, binary: bool) -> None:
        self.json_native = json_native
        self.binary = binary
        self._identifiers: dict[str, shared_pb2.StreamIdentifier] = {}

    # -- writes ----------------------------------------------------------------------

    def new_event(
        self,
        event_id: UUID,
        event_type: str,
        content_type: str,
        data: bytes,
        custom_metadata: bytes,
    ) -> NewEvent:
        """The evstore event for a proposed message.

        Raises:
            BadRequest: the backend cannot hold the payload (raw bytes on ``jsonb``).
        """
        flags = 0
        if content_type == CONTENT_JSON and self.json_native and _is_json(data):
            stored_data = data
        elif self.binary:
            stored_data = data
            flags = DATA_RAW | (JSON_CONTENT if content_type == CONTENT_JSON else 0)
        else:
            raise BadRequest(
                f"event {event_id}: this store keeps payloads as jsonb, and the data is not JSON"
            )
        metadata: bytes | None = None
        correlation_id = causation_id = None
        if custom_metadata:
            metadata = custom_metadata
            parsed = _parse_json(custom_metadata) if self.json_native else _NOT_JSON
            if parsed is _NOT_JSON:
                if not self.binary:
                    raise BadRequest(
                        f"event {event_id}: this store keeps payloads as jsonb, and the "
                        "metadata is not JSON"
                    )
                flags |= METADATA_RAW
            elif isinstance(parsed, dict):
                correlation_id = _optional_uuid(parsed.get("$correlationId"))
                causation_id = _optional_uuid(parsed.get("$causationId"))
        return NewEvent(
            event_id, event_type, stored_data, metadata, flags, correlation_id, causation_id
        )

    # -- reads -----------------------------------------------------------------------

    def content_type(self, event_type: str, flags: int) -> str:
        """The content type a stored event is read back with."""
        if event_type == METADATA_EVENT_TYPE:
            return CONTENT_JSON
        if flags & DATA_RAW:
            return CONTENT_JSON if flags & JSON_CONTENT else CONTENT_OCTET_STREAM
        return CONTENT_JSON if self.json_native else CONTENT_OCTET_STREAM

    def identifier(self, stream: str) -> shared_pb2.StreamIdentifier:
        """A (cached) stream identifier message."""
        identifier = self._identifiers.get(stream)
        if identifier is None:
            if len(self._identifiers) > 10_000:
                self._identifiers.clear()
            identifier = shared_pb2.StreamIdentifier(stream_name=stream.encode())
            self._identifiers[stream] = identifier
        return identifier

    def recorded_event(
        self, row: EventRow, revision: int, *, structured: bool
    ) -> streams_pb2.ReadResp.ReadEvent.RecordedEvent:
        """A stored event as the wire's RecordedEvent, at ``revision`` in its stream."""
        position = row[4]
        event_type = row[5]
        flags = row[8]
        return streams_pb2.ReadResp.ReadEvent.RecordedEvent(
            id=uuid_message(row[1], structured=structured),
            stream_identifier=self.identifier(row[2]),
            stream_revision=revision,
            prepare_position=position,
            commit_position=position,
            metadata={
                "type": event_type,
                "content-type": self.content_type(event_type, flags),
                "created": str(created_ticks(row[11])),
            },
            custom_metadata=_as_bytes(row[7]),
            data=_as_bytes(row[6]),
        )

    def link_event(
        self, row: EventRow, stream: str, *, structured: bool
    ) -> streams_pb2.ReadResp.ReadEvent.RecordedEvent:
        """The ``$>`` record standing for an evstore link: ``row`` as it appears in
        ``stream`` (event number ``row[0]``), pointing at the event it links."""
        number = row[0]
        position = row[4]
        return streams_pb2.ReadResp.ReadEvent.RecordedEvent(
            id=uuid_message(
                uuid.uuid5(_LINK_NAMESPACE, f"{number}@{stream}"), structured=structured
            ),
            stream_identifier=self.identifier(stream),
            stream_revision=number - 1,
            prepare_position=position,
            commit_position=position,
            metadata={
                "type": LINK_EVENT_TYPE,
                "content-type": CONTENT_OCTET_STREAM,
                "created": str(created_ticks(row[11])),
            },
            custom_metadata=b"",
            data=f"{row[3] - 1}@{row[2]}".encode(),
        )

    def read_event(
        self,
        row: EventRow,
        *,
        stream: str | None,
        structured: bool,
        resolve_links: bool,
    ) -> streams_pb2.ReadResp:
        """A ``ReadResp`` carrying one row of a stream read (``stream``) or of ``$all``
        (``stream=None``).

        A row of another stream in a stream read is an evstore link: it is sent as a
        ``$>`` event, or with ``resolve_links`` as the linked event with the link beside it.
        """
        position = row[4]
        if stream is None or row[2] == stream:
            revision = INT64_MAX if row[5] == TOMBSTONE_EVENT_TYPE else row[3] - 1
            event = self.recorded_event(row, revision, structured=structured)
            return streams_pb2.ReadResp(
                event=streams_pb2.ReadResp.ReadEvent(event=event, commit_position=position)
            )
        link = self.link_event(row, stream, structured=structured)
        if not resolve_links:
            return streams_pb2.ReadResp(
                event=streams_pb2.ReadResp.ReadEvent(event=link, commit_position=position)
            )
        target = self.recorded_event(row, row[3] - 1, structured=structured)
        return streams_pb2.ReadResp(
            event=streams_pb2.ReadResp.ReadEvent(event=target, link=link, commit_position=position)
        )


_NOT_JSON = object()


def _parse_json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return _NOT_JSON


def _is_json(data: bytes) -> bool:
    return _parse_json(data) is not _NOT_JSON
