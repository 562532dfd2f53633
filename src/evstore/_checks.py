"""Checks of plain argument values (text, integers, choices), free of evstore's types.

Every check raises an :class:`~evstore.errors.InvalidArgumentError` (a ``ValueError``) or
:class:`~evstore.errors.InvalidArgumentTypeError` (a ``TypeError``) whose message and
``argument`` attribute name the offending argument.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar

from evstore.errors import InvalidArgumentError, InvalidArgumentTypeError

__all__ = ["MAX_INT", "check_choice", "check_int", "check_text"]

MAX_INT = 2**63 - 1
"""The largest count, version or position: what a 64-bit database integer holds."""

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


def check_int(value: object, argument: str, *, minimum: int, maximum: int = MAX_INT) -> int:
    """An ``int`` (not a ``bool``) from ``minimum`` to ``maximum`` (a 64-bit integer)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentTypeError(
            f"{argument} must be an int, got {type(value).__name__}", argument=argument
        )
    if value < minimum:
        raise InvalidArgumentError(
            f"{argument} must be >= {minimum}, got {value}", argument=argument
        )
    if value > maximum:
        raise InvalidArgumentError(
            f"{argument} must be <= {maximum}, got {value}", argument=argument
        )
    return value


def check_choice(value: T, argument: str, choices: Collection[Any]) -> T:
    """One of ``choices``."""
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise InvalidArgumentError(
            f"{argument} must be one of {allowed}, got {value!r}", argument=argument
        )
    return value
