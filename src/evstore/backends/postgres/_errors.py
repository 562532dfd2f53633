"""The one place where driver failures become evstore errors.

Every database call of the backend runs inside :func:`translated`, so callers only ever see
evstore's own exceptions:

* a client-side ``command_timeout``, a server-side statement or lock timeout →
  :class:`~evstore.errors.EventStoreTimeoutError`;
* any other asyncpg error, and socket-level ``OSError`` → :class:`~evstore.errors.StorageError`.

Both are chained from the driver's exception (``raise ... from exc``). evstore's own errors
pass through untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from evstore.errors import EventStoreError, EventStoreTimeoutError, StorageError

__all__ = ["storage_error", "translated"]

_TIMEOUT_STATES = frozenset({"57014", "55P03"})  # query_canceled, lock_not_available


def storage_error(exc: BaseException, doing: str) -> EventStoreError:
    """The evstore error for driver exception ``exc`` raised while ``doing`` something."""
    if isinstance(exc, EventStoreError):
        return exc
    if isinstance(exc, TimeoutError) or getattr(exc, "sqlstate", None) in _TIMEOUT_STATES:
        return EventStoreTimeoutError(f"PostgreSQL timed out while {doing}: {exc}")
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return StorageError(
            f"PostgreSQL failed while {doing}: {exc} (run `evstore create` to create it)"
        )
    return StorageError(f"PostgreSQL failed while {doing}: {type(exc).__name__}: {exc}")


@contextmanager
def translated(doing: str) -> Iterator[None]:
    """Run the block, turning driver failures into evstore errors chained from them."""
    try:
        yield
    except EventStoreError:
        raise
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        raise storage_error(exc, doing) from exc
