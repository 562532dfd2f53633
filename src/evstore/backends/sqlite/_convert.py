"""Conversions between Python values and the column encodings of the SQLite schema.

Times are integer microseconds since the Unix epoch (exact, and they sort as numbers);
UUIDs are their 16 bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from evstore.backends.base import EventRow

__all__ = ["event_row", "from_micros", "optional_uuid", "to_micros", "uuid_bytes"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact integer arithmetic)."""
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    """The aware UTC datetime of ``micros`` microseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=micros)


def uuid_bytes(value: UUID | None) -> bytes | None:
    return None if value is None else value.bytes


def optional_uuid(value: bytes | None) -> UUID | None:
    return None if value is None else UUID(bytes=value)


def event_row(row: Sequence[Any]) -> EventRow:
    """A stored row (the columns of the ``READ_*`` statements) as the contract's EventRow."""
    return (
        row[0],
        UUID(bytes=row[1]),
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        row[8],
        None if row[9] is None else UUID(bytes=row[9]),
        None if row[10] is None else UUID(bytes=row[10]),
        _EPOCH + timedelta(microseconds=row[11]),
    )
