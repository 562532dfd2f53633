"""Fresh random (version 4) UUIDs, cheaper than ``uuid.uuid4()``.

Every ``EventData`` without an explicit id gets a fresh uuid4, so an append of 100 events
makes 100 of them. ``uuid.uuid4()`` reads the kernel's random source once per id (a system
call) and then runs ``UUID.__init__``'s argument handling; together that was the largest
single cost of building an append (``benchmarks/hot_paths.py``). :func:`new_uuid4` takes the
same random bytes from ``os.urandom`` 256 ids at a time and builds the ``UUID`` directly.
The ids are the same kind: 122 random bits from the operating system's CSPRNG, with the
version and variant bits of RFC 9562 set.

Ids may be made in any thread (see ``_values``); the unused batch is thrown away in a
forked child, which would otherwise hand out the same ids as its parent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from uuid import UUID, SafeUUID

__all__ = ["new_uuid4", "uuid_from_bytes"]

_IDS_PER_READ = 256
_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))  # the variant and version bits
_SET = (0x8000 << 48) | (4 << 76)  # variant RFC 9562, version 4
_UNKNOWN = SafeUUID.unknown
_new = object.__new__
_set = object.__setattr__

_values: Iterator[int] = iter(())
"""The 128-bit values still to hand out. ``next()`` on a list iterator is one step under
the GIL, so threads never get the same value; two threads refilling at once each make a
fresh batch, which only wastes one."""


def _refill() -> Iterator[int]:
    raw = os.urandom(16 * _IDS_PER_READ)
    return iter(
        [(int.from_bytes(raw[i : i + 16], "big") & _CLEAR) | _SET for i in range(0, len(raw), 16)]
    )


def _forget_values() -> None:
    global _values
    _values = iter(())


os.register_at_fork(after_in_child=_forget_values)


def new_uuid4() -> UUID:
    """A fresh random UUID (version 4), as ``uuid.uuid4()`` makes."""
    global _values
    try:
        value = next(_values)
    except StopIteration:
        _values = _refill()
        value = next(_values)
    # What UUID.__init__ ends with, without its argument parsing: UUIDs are immutable and
    # set their two slots through object.__setattr__.
    uuid = _new(UUID)
    _set(uuid, "int", value)
    _set(uuid, "is_safe", _UNKNOWN)
    return uuid


def uuid_from_bytes(raw: bytes) -> UUID:
    """``UUID(bytes=raw)`` for 16 bytes that are known to be a stored UUID, without the
    argument checks (the SQLite backend reads one per event)."""
    uuid = _new(UUID)
    _set(uuid, "int", int.from_bytes(raw, "big"))
    _set(uuid, "is_safe", _UNKNOWN)
    return uuid
