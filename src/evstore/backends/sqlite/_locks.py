"""Ownership locks of persistent subscriptions on SQLite.

A file database keeps one lock file per subscription in a directory beside it,
``<database file>.locks/<sha256 of stream_id NUL name, hex>.lock``, and a holder takes an
exclusive, non-blocking ``flock`` on it. The kernel releases the lock when the holder's
descriptor closes, so a process that dies (even by SIGKILL) frees its subscriptions at once;
there is nothing to expire or clean up. ``flock`` locks belong to the open file description,
not the process, so a second store in the same process (which opens its own descriptor) is
excluded too. Lock files are never deleted while the database exists: deleting one that is
held would let the next opener lock a new file beside the old holder.

Limits: ``flock`` is POSIX (no Windows), and on network file systems where the kernel emulates
it with per-process ``fcntl`` locks (NFS), two stores in one process would not exclude each
other. Processes sharing a database must see it through one local file system, as SQLite's
own WAL locking requires anyway.

``:memory:`` databases live in one process, so their locks are an in-process set per
database.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
from collections.abc import Callable

from evstore.backends.base import SubscriptionLock
from evstore.errors import NotSupportedError, StorageError

__all__ = ["HeldLock", "lock_directory", "lock_file", "lock_in_memory", "remove_directory"]

_SUFFIX = ".lock"

# Held keys per in-memory database (its unique memdb name). The lock guards the dict against
# stores driven from several threads (the blocking EventStore runs its own loop thread).
_memory_held: dict[str, set[tuple[str, str]]] = {}
_memory_guard = threading.Lock()


def lock_directory(database_path: str) -> str:
    """The directory of a file database's lock files.

    Symbolic links are resolved so that every path naming the same file agrees on it.
    """
    return os.path.realpath(database_path) + ".locks"


def _file_name(stream_id: str, name: str) -> str:
    # A hash keeps any stream id or name a valid, fixed-length file name; NUL cannot occur in
    # either, so the pair maps to one key unambiguously.
    key = f"{stream_id}\0{name}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(key).hexdigest() + _SUFFIX


class HeldLock(SubscriptionLock):
    """A subscription lock held by one backend; it tells the backend when it is released."""

    def __init__(self, unlock: Callable[[], None], on_release: Callable[[HeldLock], None]) -> None:
        self._unlock: Callable[[], None] | None = unlock
        self._on_release = on_release

    @property
    def lost(self) -> bool:
        # Nothing can take the lock away from a live holder: the kernel releases a file lock
        # only when the descriptor closes, and that happens only through release().
        return False

    @property
    def held(self) -> bool:
        """True until :meth:`release` (or the backend's close)."""
        return self._unlock is not None

    async def wait_lost(self) -> None:
        await asyncio.get_running_loop().create_future()  # never lost, see ``lost``

    async def release(self) -> None:
        self.release_now()

    def release_now(self) -> None:
        """Release without awaiting (for the backend's close). Idempotent."""
        unlock, self._unlock = self._unlock, None
        if unlock is None:
            return
        try:
            unlock()
        finally:
            self._on_release(self)


def lock_file(
    directory: str, stream_id: str, name: str, on_release: Callable[[HeldLock], None]
) -> HeldLock | None:
    """Take the subscription's file lock without waiting; ``None`` when someone holds it.

    Blocking, but only a ``mkdir``, an ``open`` and a non-blocking ``flock`` on a local file:
    it runs on the caller's thread.

    Raises:
        NotSupportedError: the platform has no ``fcntl.flock``.
        StorageError: the lock directory or file cannot be created or locked.
    """
    try:
        import fcntl
    except ImportError as exc:  # pragma: no cover - Windows
        raise NotSupportedError(
            "subscription ownership on SQLite needs fcntl.flock (a POSIX system)"
        ) from exc
    path = os.path.join(directory, _file_name(stream_id, name))
    try:
        os.makedirs(directory, exist_ok=True)
        # O_CLOEXEC: a child process started with exec must not inherit (and so keep) the lock.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise StorageError(f"cannot open the subscription lock file {path!r}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError as exc:
        os.close(fd)
        raise StorageError(f"cannot lock the subscription lock file {path!r}: {exc}") from exc

    def unlock() -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)  # closing alone would release it; unlocking first says so

    return HeldLock(unlock, on_release)


def lock_in_memory(
    database: str, stream_id: str, name: str, on_release: Callable[[HeldLock], None]
) -> HeldLock | None:
    """Take the subscription's lock of the in-memory database ``database`` (its memdb name)."""
    key = (stream_id, name)
    with _memory_guard:
        held = _memory_held.setdefault(database, set())
        if key in held:
            return None
        held.add(key)

    def unlock() -> None:
        with _memory_guard:
            keys = _memory_held.get(database)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del _memory_held[database]

    return HeldLock(unlock, on_release)


def remove_directory(directory: str) -> None:
    """Delete the lock files and their directory (when dropping the database).

    Only evstore's own ``*.lock`` files are removed; a directory holding anything else stays.
    """
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for entry in names:
        if entry.endswith(_SUFFIX):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(directory, entry))
    with contextlib.suppress(OSError):
        os.rmdir(directory)
