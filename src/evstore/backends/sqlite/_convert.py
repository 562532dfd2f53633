"""Conversions between Python values and the column encodings of the SQLite schema.

Times are integer microseconds since the Unix epoch (exact, and they sort as numbers);
UUIDs are their 16 bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from evstore._ids import uuid_from_bytes
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
    append = converted.append
    last_micros: int | None = None
    last_moment = _EPOCH
    for (
        number,
        event_id,
        stream_id,
        version,
        position,
        event_type,
        data,
        metadata,
        flags,
        correlation_id,
        causation_id,
        micros,
    ) in rows:
        if micros != last_micros:
            last_micros, last_moment = micros, _EPOCH + timedelta(0, 0, micros)
        append(
            (
                number,
                uuid_from_bytes(event_id),
                stream_id,
                version,
                position,
                event_type,
                data,
                metadata,
                flags,
                None if correlation_id is None else uuid_from_bytes(correlation_id),
                None if causation_id is None else uuid_from_bytes(causation_id),
                last_moment,
            )
        )
    return converted
