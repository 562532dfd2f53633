"""The records of an export file that are not events: what ``$all`` cannot tell.

An export file is JSON lines: first the events of ``$all`` (:mod:`._records`; they carry no
``"kind"``, so files written before these records existed still import), then one record per
piece of stream state, told apart by ``"kind"``:

``{"kind": "link", "stream_id", "event_number", "event_id"}``
    entry ``event_number`` of ``stream_id`` is a link to the event ``event_id``.
``{"kind": "deleted", "stream_id", "stream_version", "deleted_at"}``
    the stream is soft-deleted at that version. Its links cannot be read any more, so the
    file holds none; import recreates those entries as links no reader can ever see.
``{"kind": "version", "stream_id", "stream_version"}``
    the stream's version, written only when some of its entries could not be read (links
    to hard-deleted events, or links hidden by ``$tb``/``$maxCount``/``$maxAge``); import
    recreates them as empty slots, which reads skip as they skip the originals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from evstore import RecordedEvent, StreamInfo
from evstore.cli._records import (
    ImportedEvent,
    event_from_object,
    iso_time,
    loads_object,
    parse_time,
)

__all__ = [
    "DeletedRecord",
    "LinkRecord",
    "Record",
    "VersionRecord",
    "deleted_record",
    "link_record",
    "parse_record",
    "version_record",
]


@dataclass(frozen=True, slots=True)
class LinkRecord:
    """Entry ``event_number`` of ``stream_id`` links the event ``event_id``."""

    stream_id: str
    event_number: int
    event_id: UUID


@dataclass(frozen=True, slots=True)
class DeletedRecord:
    """``stream_id`` was soft-deleted at ``stream_version``."""

    stream_id: str
    stream_version: int
    deleted_at: datetime | None


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """``stream_id`` is at ``stream_version``; entries no other record names were unreadable."""

    stream_id: str
    stream_version: int


Record = ImportedEvent | LinkRecord | DeletedRecord | VersionRecord
"""Whatever one line of an export file describes."""


def link_record(stream_id: str, entry: RecordedEvent) -> dict[str, Any]:
    """The record of ``entry``, read from ``stream_id``, which is a link."""
    return {
        "kind": "link",
        "stream_id": stream_id,
        "event_number": entry.event_number,
        "event_id": str(entry.event_id),
    }


def deleted_record(info: StreamInfo) -> dict[str, Any]:
    """The record of a soft-deleted stream, from its listing entry."""
    return {
        "kind": "deleted",
        "stream_id": info.stream_id,
        "stream_version": info.stream_version,
        "deleted_at": None if info.deleted_at is None else iso_time(info.deleted_at),
    }


def version_record(stream_id: str, stream_version: int) -> dict[str, Any]:
    """The record of a stream's version, for a stream with unreadable entries."""
    return {"kind": "version", "stream_id": stream_id, "stream_version": stream_version}


_FIELDS = {
    "link": ("stream_id", "event_number", "event_id"),
    "deleted": ("stream_id", "stream_version", "deleted_at"),
    "version": ("stream_id", "stream_version"),
}


def _positive(record: dict[str, Any], key: str, where: str) -> int:
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}: {key} must be an integer >= 1")
    return value


def _stream_id(record: dict[str, Any], where: str) -> str:
    stream_id = record["stream_id"]
    if not isinstance(stream_id, str) or not stream_id:
        raise ValueError(f"{where}: stream_id must be a non-empty string")
    if stream_id == "$all":
        raise ValueError(f"{where}: $all has no links, version or deletion to restore")
    return stream_id


def _event_id(value: object, where: str) -> UUID:
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    raise ValueError(f"{where}: event_id must be a UUID string, got {value!r}")


def _state_record(record: dict[str, Any], kind: object, where: str) -> Record:
    fields = _FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        known = ", ".join(repr(name) for name in _FIELDS)
        raise ValueError(f"{where}: unknown kind {kind!r} (known: {known}; none for an event)")
    missing = [key for key in fields if key not in record]
    if missing:
        raise ValueError(f"{where}: {kind} record misses field(s) {', '.join(missing)}")
    unknown = sorted(set(record) - set(fields) - {"kind"})
    if unknown:
        raise ValueError(f"{where}: {kind} record has unknown field(s) {', '.join(unknown)}")
    stream_id = _stream_id(record, where)
    if kind == "link":
        event_number = _positive(record, "event_number", where)
        return LinkRecord(stream_id, event_number, _event_id(record["event_id"], where))
    version = _positive(record, "stream_version", where)
    if kind == "version":
        return VersionRecord(stream_id, version)
    deleted_at = record["deleted_at"]
    return DeletedRecord(
        stream_id,
        version,
        None if deleted_at is None else parse_time(deleted_at, where, "deleted_at"),
    )


def parse_record(line: bytes | str, where: str) -> Record:
    """Parse and check one line of an export file: an event, or a ``kind`` record.

    Raises:
        ValueError: the line is not a complete, well-formed record; the message starts
            with ``where``.
    """
    record = loads_object(line, where)
    if "kind" not in record:
        return event_from_object(record, where)
    return _state_record(record, record["kind"], where)
