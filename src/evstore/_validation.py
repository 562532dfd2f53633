"""Argument checks shared by the store façade.

Every check raises an :class:`~evstore.errors.InvalidArgumentError` (a ``ValueError``) or
:class:`~evstore.errors.InvalidArgumentTypeError` (a ``TypeError``) whose message and
``argument`` attribute name the offending argument, before anything reaches a database.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar

from evstore._types import ALL_STREAM, ExpectedVersion
from evstore.errors import (
    CannotAppendToAllStreamError,
    CannotDeleteAllStreamError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
)

__all__ = [
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

T = TypeVar("T")


def check_text(value: object, argument: str, *, max_length: int | None = None) -> str:
    """A non-empty string without NUL characters that encodes as UTF-8."""
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(
            f"{argument} must be a str, got {type(value).__name__}", argument=argument
        )
    if not value:
        raise InvalidArgumentError(f"{argument} must not be empty", argument=argument)
    if max_length is not None and len(value) > max_length:
        raise InvalidArgumentError(
            f"{argument} is {len(value)} characters long; the limit is {max_length}",
            argument=argument,
        )
    if "\x00" in value:
        raise InvalidArgumentError(f"{argument} must not contain NUL characters", argument=argument)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError(
            f"{argument} is not valid Unicode (it holds a lone surrogate)", argument=argument
        ) from None
    return value


def check_stream_id(value: object, argument: str = "stream_id") -> str:
    """A readable stream id: see :func:`check_text`, at most ``MAX_STREAM_ID_LENGTH``."""
    return check_text(value, argument, max_length=MAX_STREAM_ID_LENGTH)


def check_writable_stream_id(value: object, *, deleting: bool = False) -> str:
    """A stream id that may be appended, linked or deleted: never ``"$all"``."""
    stream_id = check_stream_id(value)
    if stream_id == ALL_STREAM:
        raise CannotDeleteAllStreamError() if deleting else CannotAppendToAllStreamError()
    return stream_id


def check_int(value: object, argument: str, *, minimum: int) -> int:
    """An ``int`` (not a ``bool``) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentTypeError(
            f"{argument} must be an int, got {type(value).__name__}", argument=argument
        )
    if value < minimum:
        raise InvalidArgumentError(
            f"{argument} must be >= {minimum}, got {value}", argument=argument
        )
    return value


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


def check_choice(value: T, argument: str, choices: Collection[Any]) -> T:
    """One of ``choices``."""
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise InvalidArgumentError(
            f"{argument} must be one of {allowed}, got {value!r}", argument=argument
        )
    return value
