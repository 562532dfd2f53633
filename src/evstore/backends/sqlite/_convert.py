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

__all__ = ["event_rows", "from_micros", "to_micros", "uuid_bytes"]

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


def event_rows(rows: Sequence[Sequence[Any]]) -> list[EventRow]:
    """Stored rows (the columns of the ``READ_*`` statements) as the contract's EventRows.

    The hottest loop of every read. Events appended together share one ``created_at``, so
    the last conversion is reused while the stored value repeats.
    """
    converted: list[EventRow] = []
    last_micros: int | None = None
    last_moment = _EPOCH
    for row in rows:
        micros = row[11]
        if micros != last_micros:
            last_micros, last_moment = micros, _EPOCH + timedelta(microseconds=micros)
        converted.append(
            (
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
                last_moment,
            )
        )
    return converted
