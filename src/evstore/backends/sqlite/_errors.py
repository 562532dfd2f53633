"""The one place where ``sqlite3`` exceptions become evstore errors."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from evstore.errors import EventStoreError, EventStoreTimeoutError, StorageError

__all__ = ["driver_errors", "translate"]

# Result codes (primary code = extended code & 0xFF) meaning "another connection holds the
# lock and busy_timeout ran out".
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6


def translate(exc: sqlite3.Error, path: str) -> EventStoreError:
    """The evstore error for a driver exception, chained from it (``__cause__``).

    A lock still held when ``busy_timeout`` ran out becomes ``EventStoreTimeoutError``;
    everything else is a ``StorageError`` naming the database file.
    """
    error: EventStoreError
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED):
        error = EventStoreTimeoutError(
            f"the SQLite database {path!r} stayed locked by another connection or process "
            f"longer than the store's timeout: {exc}"
        )
    else:
        error = StorageError(f"SQLite error on {path!r}: {exc}")
    # Set here so that errors handed to futures (never raised with ``from``) are chained too.
    error.__cause__ = exc
    return error


@contextmanager
def driver_errors(path: str) -> Iterator[None]:
    """Run a block, turning any ``sqlite3.Error`` into evstore's (chained from it)."""
    try:
        yield
    except sqlite3.Error as exc:
        raise translate(exc, path) from exc
