"""Value codecs the pool's connections use instead of asyncpg's own.

``timestamptz``: every event row carries its ``created_at``, and asyncpg builds each value
as ``epoch + timedelta(...)``, about a third of the client's cost of reading a row
(``benchmarks/hot_paths.py``). All events of one append share one ``created_at``, so rows
read in order repeat the same value over and over: this codec keeps the last value it built
and hands it out again when the next row has the same timestamp. It returns exactly what
asyncpg's codec returns (aware UTC datetimes; the naive ``datetime.max``/``datetime.min``
for PostgreSQL's infinities) and encodes the same way (naive datetimes as local time, the
extreme datetimes as the infinities).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

__all__ = ["install_codecs", "timestamp_codec"]

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
"""PostgreSQL's timestamp epoch: values travel as microseconds since then."""
_MICROSECOND = timedelta(microseconds=1)
_INFINITY = 2**63 - 1
_NEGATIVE_INFINITY = -(2**63)
# What asyncpg returns for and accepts as the infinities (naive, the extreme datetimes).
_INFINITE = datetime.max
_NEGATIVE_INFINITE = datetime.min

Decoder = Callable[[tuple[int]], datetime]
Encoder = Callable[[datetime], tuple[int]]


def timestamp_codec() -> tuple[Encoder, Decoder]:
    """A fresh (encoder, decoder) pair for one connection (the decoder's memory of the
    last value is its own, never shared between threads)."""
    last: tuple[int, datetime] = (_INFINITY, _INFINITE)

    def decode(value: tuple[int]) -> datetime:
        nonlocal last
        micros = value[0]
        if micros == last[0]:
            return last[1]
        if micros == _INFINITY:
            return _INFINITE
        if micros == _NEGATIVE_INFINITY:
            return _NEGATIVE_INFINITE
        result = _EPOCH + timedelta(0, 0, micros)  # positional: faster than the keyword
        last = (micros, result)
        return result

    def encode(value: datetime) -> tuple[int]:
        # asyncpg sends the extreme datetimes, whatever their time zone, as the infinities.
        wall = value.replace(tzinfo=None)
        if wall == _INFINITE:
            return (_INFINITY,)
        if wall == _NEGATIVE_INFINITE:
            return (_NEGATIVE_INFINITY,)
        return ((value.astimezone(UTC) - _EPOCH) // _MICROSECOND,)

    return encode, decode


async def install_codecs(conn: Any) -> None:
    """Give ``conn`` evstore's codecs (the pool's ``init`` hook)."""
    encode, decode = timestamp_codec()
    connection: asyncpg.Connection = conn
    await connection.set_type_codec(
        "timestamptz", schema="pg_catalog", encoder=encode, decoder=decode, format="tuple"
    )
