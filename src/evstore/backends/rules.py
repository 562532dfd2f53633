"""Semantic rules every backend applies the same way, free of any database.

* :func:`check_expected_version` — the expected-version table (reference §1.2.1).
* :func:`check_delete` — the same table for deletes, then the hard-delete switch.
* :func:`visible_range` — what stream metadata (``$tb``, ``$maxCount``, ``$maxAge``) leaves
  readable.
* :func:`metadata_stream_of` — where a stream's metadata lives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson

from evstore._types import ExpectedVersion
from evstore.errors import (
    DuplicateEventError,
    NotSupportedError,
    StreamDeletedError,
    StreamExistsError,
    StreamNotFoundError,
    WrongExpectedVersionError,
)

__all__ = [
    "METADATA_EVENT_TYPE",
    "StreamState",
    "VisibleRange",
    "check_delete",
    "check_expected_version",
    "check_new_links",
    "is_metadata_stream",
    "metadata_stream_of",
    "total_pages",
    "visible_range",
]

METADATA_EVENT_TYPE = "$metadata"
_METADATA_PREFIX = "$$"


@dataclass(frozen=True, slots=True)
class StreamState:
    """The part of a stream's row the checks need."""

    version: int
    deleted: bool


def check_expected_version(
    stream_id: str, expected: ExpectedVersion | int, state: StreamState | None
) -> None:
    """Raise unless ``expected`` holds for a stream in ``state`` (``None``: no such stream).

    Raises:
        StreamDeletedError: the stream is soft deleted (whatever was expected).
        StreamNotFoundError: ``STREAM_EXISTS`` on a missing stream.
        StreamExistsError: ``NO_STREAM`` on a stream that has events.
        WrongExpectedVersionError: an integer that is not the stream's version.
    """
    if state is not None and state.deleted:
        raise StreamDeletedError(f"stream {stream_id!r} is deleted", stream_id=stream_id)
    version = 0 if state is None else state.version
    if expected is ExpectedVersion.ANY_VERSION:
        return
    if expected is ExpectedVersion.NO_STREAM:
        if version > 0:
            raise StreamExistsError(
                f"stream {stream_id!r} already exists (version {version})",
                stream_id=stream_id,
                expected_version=expected,
                actual_version=version,
            )
        return
    if expected is ExpectedVersion.STREAM_EXISTS:
        if state is None:
            raise StreamNotFoundError(
                f"stream {stream_id!r} does not exist",
                stream_id=stream_id,
                expected_version=expected,
            )
        return
    if expected != version:
        raise WrongExpectedVersionError(
            f"stream {stream_id!r} is at version {version}, expected {expected}",
            stream_id=stream_id,
            expected_version=expected,
            actual_version=version,
        )


def check_delete(
    stream_id: str,
    expected: ExpectedVersion | int,
    state: StreamState | None,
    *,
    hard: bool,
    hard_deletes_enabled: bool,
) -> StreamState:
    """Apply the delete rules and return the state of the stream to delete.

    The expected-version check comes first (so ``STREAM_EXISTS`` on a missing stream is
    ``StreamNotFoundError``), then the hard-delete switch, then existence.
    """
    check_expected_version(stream_id, expected, state)
    if hard and not hard_deletes_enabled:
        raise NotSupportedError(
            "hard deletes are disabled; open the store with enable_hard_deletes=True"
        )
    if state is None:
        raise StreamNotFoundError(f"stream {stream_id!r} does not exist", stream_id=stream_id)
    return state


def check_new_links(stream_id: str, event_ids: Sequence[UUID], present: set[UUID]) -> None:
    """Raise unless every id is new to the stream (``present``) and listed once.

    Raises:
        DuplicateEventError: naming the first id, in list order, that is already in the
            stream or repeated.
    """
    seen = set(present)
    for event_id in event_ids:
        if event_id in seen:
            raise DuplicateEventError(
                f"event {event_id} is already in stream {stream_id!r}",
                stream_id=stream_id,
                event_id=event_id,
            )
        seen.add(event_id)


def metadata_stream_of(stream_id: str) -> str:
    """The stream holding ``stream_id``'s metadata events (KurrentDB's ``$$<stream>``)."""
    return _METADATA_PREFIX + stream_id


def is_metadata_stream(stream_id: str) -> bool:
    return stream_id.startswith(_METADATA_PREFIX)


@dataclass(frozen=True, slots=True)
class VisibleRange:
    """Which of a stream's own events its metadata leaves readable."""

    min_version: int = 1
    """The lowest readable event number."""
    min_created_at: datetime | None = None
    """Events created before this are hidden (``$maxAge``)."""


UNRESTRICTED = VisibleRange()
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)


def _non_negative_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


_MAX_VERSION = 2**63 - 1


def visible_range(metadata: bytes | str | None, stream_version: int, now: datetime) -> VisibleRange:
    """What ``$tb``, ``$maxCount`` and ``$maxAge`` in ``metadata`` leave readable.

    ``$tb`` (truncate before) is KurrentDB's 0-based revision: events with version
    ``<= $tb`` are hidden. ``$maxCount`` keeps the last N events; ``$maxAge`` hides events
    older than N seconds. Malformed values are ignored rather than hiding data.
    """
    if not metadata:
        return UNRESTRICTED
    try:
        doc = orjson.loads(metadata)
    except orjson.JSONDecodeError:
        return UNRESTRICTED
    if not isinstance(doc, dict):
        return UNRESTRICTED
    min_version = 1
    tb = _non_negative_int(doc.get("$tb"))
    if tb is not None:
        # Clamped to the largest 64-bit value: KurrentDB's soft delete sets $tb to it, and
        # databases bind the bound as a signed 64-bit integer.
        min_version = max(min_version, min(tb + 1, _MAX_VERSION))
    max_count = _non_negative_int(doc.get("$maxCount"))
    if max_count is not None:
        min_version = max(min_version, stream_version - max_count + 1)
    min_created_at = None
    max_age = doc.get("$maxAge")
    # An age reaching back before year 1 hides nothing (and would overflow datetime).
    if (
        isinstance(max_age, (int, float))
        and not isinstance(max_age, bool)
        and 0 <= max_age < (now - _EARLIEST).total_seconds()
    ):
        min_created_at = now - timedelta(seconds=max_age)
    return VisibleRange(min_version, min_created_at)


def total_pages(total_entries: int, page_size: int) -> int:
    """Pages needed for ``total_entries`` (1 for an empty listing)."""
    return max(1, math.ceil(total_entries / page_size))
