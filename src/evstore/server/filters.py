"""Server-side filters of ``$all`` reads and subscriptions (``ReadReq.Options.FilterOptions``).

A filter looks at one field of each event, the stream name or the event type, and keeps it
when the field starts with one of the prefixes or, without prefixes, when the regular
expression matches anywhere in it: .NET's ``Regex.IsMatch`` is a search, so it is Python's
``re.search`` (clients anchor their patterns themselves, e.g. ``^(a|b)$``).

Filtered subscriptions also send checkpoints: one after every ``max x multiplier`` events
*scanned*, matched or not, so a client whose filter matches rarely can still store how far
the log has been searched.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_CHECKPOINT_INTERVAL",
    "EventFilter",
    "FilterError",
    "FilterField",
    "checkpoint_interval",
    "translate_dotnet_regex",
]

FilterField = Literal["stream", "event_type"]

# KurrentDB's default search window (32) when a request asks for `count` instead of `max`.
DEFAULT_WINDOW = 32
DEFAULT_CHECKPOINT_INTERVAL = DEFAULT_WINDOW
# A multiplier beyond this would make checkpoints practically never; clamp the interval.
MAX_CHECKPOINT_INTERVAL = 2**31 - 1

# .NET named groups `(?<name>...)` / `(?'name'...)` and backreferences `\k<name>`; lookbehinds
# `(?<=` and `(?<!` share the `(?<` opening and must stay as they are.
_NAMED_GROUP = re.compile(r"(?<!\\)\(\?<(?![=!])([A-Za-z_][A-Za-z0-9_]*)>")
_QUOTED_GROUP = re.compile(r"(?<!\\)\(\?'([A-Za-z_][A-Za-z0-9_]*)'")
_BACKREFERENCE = re.compile(r"\\k<([A-Za-z_][A-Za-z0-9_]*)>")


class FilterError(ValueError):
    """A filter that cannot be applied (a regular expression that does not compile)."""


def translate_dotnet_regex(pattern: str) -> str:
    """Rewrite the .NET-only spellings of named groups into Python's; the rest of the
    syntax clients use (classes, anchors, lookaheads, alternation) is common to both."""
    pattern = _NAMED_GROUP.sub(r"(?P<\1>", pattern)
    pattern = _QUOTED_GROUP.sub(r"(?P<\1>", pattern)
    return _BACKREFERENCE.sub(r"(?P=\1)", pattern)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Keep events whose stream name (or event type) has a prefix or matches a regex.

    Build one with :meth:`create`.

    Attributes:
        field: ``"stream"`` or ``"event_type"``.
        prefixes: when non-empty, the filter is "starts with any of these".
        pattern: the compiled regular expression, used when there are no prefixes
            (``None``: everything matches).
    """

    field: FilterField
    prefixes: tuple[str, ...]
    pattern: re.Pattern[str] | None

    @classmethod
    def create(cls, field: FilterField, regex: str, prefixes: Sequence[str]) -> EventFilter:
        """A filter on ``field``: by ``prefixes`` when there are any, else by ``regex``.

        Raises:
            FilterError: ``regex`` does not compile.
        """
        kept = tuple(prefixes)
        if kept:
            return cls(field, kept, None)
        if not regex:
            return cls(field, (), None)
        try:
            pattern = re.compile(translate_dotnet_regex(regex))
        except (re.error, RecursionError, OverflowError) as exc:
            raise FilterError(f"invalid filter regex {regex!r}: {exc}") from exc
        return cls(field, (), pattern)

    def matches(self, stream: str, event_type: str) -> bool:
        """Whether an event of ``stream`` with type ``event_type`` passes."""
        value = stream if self.field == "stream" else event_type
        if self.prefixes:
            return value.startswith(self.prefixes)
        if self.pattern is None:
            return True
        return self.pattern.search(value) is not None


def checkpoint_interval(window: int | None, multiplier: int) -> int:
    """Events scanned between two checkpoints: ``window x multiplier``.

    ``window`` is the request's ``max`` search window (``None`` for the ``count`` variant,
    which uses KurrentDB's default of 32); a zero window or multiplier counts as 1, so a
    checkpoint interval is never zero.
    """
    size = DEFAULT_WINDOW if window is None else max(window, 1)
    return min(size * max(multiplier, 1), MAX_CHECKPOINT_INTERVAL)
