"""Argument checks shared by the store façade.

Every check raises an :class:`~evstore.errors.InvalidArgumentError` (a ``ValueError``) or
:class:`~evstore.errors.InvalidArgumentTypeError` (a ``TypeError``) whose message and
``argument`` attribute name the offending argument, before anything reaches a database.
"""

from __future__ import annotations

from evstore._checks import MAX_INT, check_choice, check_int, check_text
from evstore._types import ALL_STREAM, ExpectedVersion
from evstore.errors import (
    CannotAppendToAllStreamError,
    CannotDeleteAllStreamError,
    InvalidArgumentTypeError,
)

__all__ = [
    "MAX_INT",
    "MAX_STREAM_ID_LENGTH",
    "check_choice",
    "check_expected_version_arg",
    "check_int",
    "check_stream_id",
    "check_text",
    "check_writable_stream_id",
]

MAX_STREAM_ID_LENGTH = 2048
"""The longest stream id (in characters) the store accepts."""


def check_stream_id(value: object, argument: str = "stream_id") -> str:
    """A readable stream id: see :func:`check_text`, at most ``MAX_STREAM_ID_LENGTH``."""
    return check_text(value, argument, max_length=MAX_STREAM_ID_LENGTH)


def check_writable_stream_id(value: object, *, deleting: bool = False) -> str:
    """A stream id that may be appended, linked or deleted: never ``"$all"``."""
    stream_id = check_stream_id(value)
    if stream_id == ALL_STREAM:
        raise CannotDeleteAllStreamError() if deleting else CannotAppendToAllStreamError()
    return stream_id


def check_expected_version_arg(value: object) -> ExpectedVersion | int:
    """``ANY_VERSION``, ``NO_STREAM``, ``STREAM_EXISTS`` or a non-negative int."""
    if isinstance(value, ExpectedVersion):
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentTypeError(
            "expected_version must be ANY_VERSION, NO_STREAM, STREAM_EXISTS or an int, "
            f"got {value!r}",
            argument="expected_version",
        )
    return check_int(value, "expected_version", minimum=0)
