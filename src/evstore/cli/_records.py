"""The JSON-lines record of one event: written by ``read`` and ``export``, read by ``import``.

One format for both directions, so ``evstore read '$all' > f`` is as importable as an export.
A record holds every field of a :class:`~evstore.RecordedEvent`; ``created_at`` is ISO 8601
with microseconds and a UTC offset. JSON cannot hold bytes, so a ``bytes`` payload is written
as base64 with a marker beside it (``"data_encoding": "base64"``, likewise
``"metadata_encoding"``); the marker is absent for ordinary JSON payloads. An event record
has no ``"kind"`` field: the other records of an export file (links, deletions, versions,
:mod:`._stream_records`) are told apart by theirs.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from evstore import EventData, RecordedEvent, StreamInfo

__all__ = [
    "BASE64",
    "ImportedEvent",
    "dumps",
    "event_from_object",
    "event_record",
    "info_record",
    "iso_time",
    "loads_object",
    "new_event_from",
    "parse_event_record",
    "parse_time",
]

BASE64 = "base64"

# Keys a record of a stored event carries; import needs the first group, the rest are
# informative (positions are reassigned by the target store).
_REQUIRED = ("event_id", "stream_id", "stream_version", "event_type", "data", "created_at")
_OPTIONAL = (
    "event_number",
    "position",
    "metadata",
    "data_encoding",
    "metadata_encoding",
    "correlation_id",
    "causation_id",
)


def iso_time(moment: datetime) -> str:
    """``moment`` as ISO 8601 in UTC with microseconds (the format of every record)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _payload(record: dict[str, Any], key: str, value: Any) -> None:
    if isinstance(value, (bytes, bytearray, memoryview)):
        record[key] = base64.b64encode(bytes(value)).decode("ascii")
        record[f"{key}_encoding"] = BASE64
    else:
        record[key] = value


def event_record(event: RecordedEvent) -> dict[str, Any]:
    """The JSON-ready record of ``event`` (see the module docstring)."""
    record: dict[str, Any] = {
        "event_id": str(event.event_id),
        "event_number": event.event_number,
        "stream_id": event.stream_id,
        "stream_version": event.stream_version,
        "position": event.position,
        "event_type": event.event_type,
    }
    _payload(record, "data", event.data)
    _payload(record, "metadata", event.metadata)
    record["correlation_id"] = None if event.correlation_id is None else str(event.correlation_id)
    record["causation_id"] = None if event.causation_id is None else str(event.causation_id)
    record["created_at"] = iso_time(event.created_at)
    return record


def info_record(info: StreamInfo) -> dict[str, Any]:
    """The JSON-ready record of a stream's info."""
    return {
        "stream_id": info.stream_id,
        "stream_version": info.stream_version,
        "created_at": iso_time(info.created_at),
        "deleted_at": None if info.deleted_at is None else iso_time(info.deleted_at),
        "status": info.status,
    }


def _fallback(value: Any) -> Any:
    # Payloads decoded by the default JSON serializer are plain JSON values; anything else
    # (a serializer with registered types) is shown by its text rather than failing.
    return str(value)


def dumps(record: dict[str, Any]) -> bytes:
    """One JSON line (with its newline) for ``record``."""
    return orjson.dumps(record, default=_fallback, option=orjson.OPT_APPEND_NEWLINE)


def loads_object(line: bytes | str, where: str) -> dict[str, Any]:
    """Parse one JSON line that must hold an object.

    Raises:
        ValueError: not JSON, or not an object; the message starts with ``where``.
    """
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def _decode_payload(record: dict[str, Any], key: str, where: str) -> Any:
    value = record.get(key)
    encoding = record.get(f"{key}_encoding")
    if encoding is None:
        return value
    if encoding != BASE64:
        raise ValueError(f"{where}: {key}_encoding must be {BASE64!r}, got {encoding!r}")
    if not isinstance(value, str):
        raise ValueError(f"{where}: {key} is marked base64 but is not a string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"{where}: {key} is not valid base64 ({exc})") from None


def new_event_from(record: dict[str, Any], where: str) -> EventData:
    """Build the ``EventData`` a record describes (ids, type, payloads).

    Raises:
        ValueError, TypeError: a missing or malformed field; messages start with ``where``.
    """
    event_type = record.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        raise ValueError(f"{where}: event_type must be a non-empty string")
    try:
        return EventData(
            event_type,
            _decode_payload(record, "data", where),
            _decode_payload(record, "metadata", where),
            event_id=record.get("event_id"),
            correlation_id=record.get("correlation_id"),
            causation_id=record.get("causation_id"),
        )
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc}") from None


@dataclass(frozen=True, slots=True)
class ImportedEvent:
    """One exported event, ready to append: where it goes, when it happened, what it is."""

    stream_id: str
    stream_version: int
    created_at: datetime
    event: EventData


def parse_time(value: object, where: str, name: str = "created_at") -> datetime:
    """Parse the ISO 8601 time ``value`` of field ``name``; it must carry a UTC offset.

    Raises:
        ValueError: not a string, not ISO 8601, or naive; the message starts with ``where``.
    """
    if not isinstance(value, str):
        raise ValueError(f"{where}: {name} must be an ISO 8601 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{where}: {name} {value!r} is not ISO 8601") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{where}: {name} {value!r} has no UTC offset")
    return moment.astimezone(UTC)


def parse_event_record(line: bytes | str, where: str) -> ImportedEvent:
    """Parse and check one exported event.

    Raises:
        ValueError: the line is not a complete, well-formed record.
    """
    return event_from_object(loads_object(line, where), where)


def event_from_object(record: dict[str, Any], where: str) -> ImportedEvent:
    """Check the parsed JSON object of one exported event and build what import appends.

    Raises:
        ValueError: the object is not a complete, well-formed event record.
    """
    missing = [key for key in _REQUIRED if key not in record]
    if missing:
        raise ValueError(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(record) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}")
    stream_id = record["stream_id"]
    if not isinstance(stream_id, str) or not stream_id:
        raise ValueError(f"{where}: stream_id must be a non-empty string")
    version = record["stream_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{where}: stream_version must be an integer >= 1")
    if record["event_id"] is None:
        raise ValueError(f"{where}: event_id must be a UUID")
    return ImportedEvent(
        stream_id,
        version,
        parse_time(record["created_at"], where),
        new_event_from(record, where),
    )
