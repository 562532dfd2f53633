"""The options of a persistent subscription, checked once when it is subscribed."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from evstore._checks import check_int
from evstore._types import RecordedEvent
from evstore.errors import InvalidArgumentError, InvalidArgumentTypeError

__all__ = [
    "NACK_ACTIONS",
    "STRATEGIES",
    "NackAction",
    "PersistentOptions",
    "StartFrom",
    "Strategy",
    "SubscriptionOptions",
    "check_callable",
]

Strategy = Literal["round_robin", "dispatch_to_single", "pinned", "pinned_by_correlation"]
STRATEGIES: tuple[Strategy, ...] = (
    "round_robin",
    "dispatch_to_single",
    "pinned",
    "pinned_by_correlation",
)
NackAction = Literal["retry", "park", "skip", "stop"]
NACK_ACTIONS: tuple[NackAction, ...] = ("retry", "park", "skip", "stop")
StartFrom = Literal["origin", "current"] | int

Selector = Callable[[RecordedEvent], Any]
Mapper = Callable[[RecordedEvent], Any]
Partitioner = Callable[[RecordedEvent], Hashable]


class PersistentOptions(TypedDict, total=False):
    """The keyword options of ``subscribe_to_stream`` / ``subscribe_to_all_streams``."""

    start_from: StartFrom
    selector: Selector | None
    mapper: Mapper | None
    concurrency_limit: int | None
    buffer_size: int
    max_size: int
    checkpoint_threshold: int
    checkpoint_after: float
    partition_by: Partitioner | None
    transient: bool
    message_timeout: float | None
    max_retry_count: int
    strategy: Strategy
    retry_interval: float
    subscriber: Hashable | None


def check_callable(value: object, argument: str) -> Any:
    """``value`` if it is ``None`` or callable."""
    if value is not None and not callable(value):
        raise InvalidArgumentTypeError(
            f"{argument} must be callable, got {type(value).__name__}", argument=argument
        )
    return value


def check_seconds(value: object, argument: str, *, allow_none: bool) -> float | None:
    """A non-negative, finite number of seconds (or ``None`` when allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentTypeError(
            f"{argument} must be a number of seconds, got {type(value).__name__}",
            argument=argument,
        )
    if not math.isfinite(value) or value < 0:
        raise InvalidArgumentError(
            f"{argument} must be a non-negative number of seconds, got {value!r}",
            argument=argument,
        )
    return float(value)


def check_start_from(value: object) -> StartFrom:
    """``"origin"``, ``"current"`` or a non-negative event number."""
    if value in ("origin", "current"):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return check_int(value, "start_from", minimum=0)
    if isinstance(value, str):
        raise InvalidArgumentError(
            f"start_from must be 'origin', 'current' or an event number, got {value!r}",
            argument="start_from",
        )
    raise InvalidArgumentTypeError(
        f"start_from must be 'origin', 'current' or an int, got {type(value).__name__}",
        argument="start_from",
    )


@dataclass(frozen=True, slots=True)
class SubscriptionOptions:
    """Settings of one persistent subscription (see ``subscribe_to_stream``)."""

    start_from: StartFrom = "origin"
    selector: Selector | None = None
    mapper: Mapper | None = None
    concurrency_limit: int | None = None
    buffer_size: int = 1
    max_size: int = 1000
    checkpoint_threshold: int = 1
    checkpoint_after: float = 0.0
    partition_by: Partitioner | None = None
    transient: bool = False
    message_timeout: float | None = None
    max_retry_count: int = 10
    strategy: Strategy = "round_robin"
    retry_interval: float = 1.0

    @classmethod
    def checked(cls, given: Mapping[str, Any]) -> SubscriptionOptions:
        """Options from keyword values (defaults for the missing ones), each checked,
        with a clear error naming it. ``subscriber`` is not an option of the
        subscription and is ignored here."""
        known = {f.name for f in dataclasses.fields(cls)} | {"subscriber"}
        unknown = sorted(set(given) - known)
        if unknown:
            raise InvalidArgumentError(
                f"unknown subscription option {unknown[0]!r}; options are "
                f"{', '.join(sorted(known))}",
                argument=unknown[0],
            )
        values = {f.name: given.get(f.name, f.default) for f in dataclasses.fields(cls)}
        limit = values["concurrency_limit"]
        if limit is not None:
            limit = check_int(limit, "concurrency_limit", minimum=1)
        transient = values["transient"]
        if not isinstance(transient, bool):
            raise InvalidArgumentTypeError("transient must be a bool", argument="transient")
        strategy = values["strategy"]
        if not isinstance(strategy, str):
            raise InvalidArgumentTypeError(
                f"strategy must be a string, got {type(strategy).__name__}", argument="strategy"
            )
        if strategy not in STRATEGIES:
            raise InvalidArgumentError(
                f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}",
                argument="strategy",
            )
        retry_interval = check_seconds(values["retry_interval"], "retry_interval", allow_none=False)
        assert retry_interval is not None
        if retry_interval == 0:
            raise InvalidArgumentError("retry_interval must be above 0", argument="retry_interval")
        timeout = check_seconds(values["message_timeout"], "message_timeout", allow_none=True)
        if timeout == 0:
            timeout = None
        checkpoint_after = check_seconds(
            values["checkpoint_after"], "checkpoint_after", allow_none=False
        )
        assert checkpoint_after is not None
        return cls(
            start_from=check_start_from(values["start_from"]),
            selector=check_callable(values["selector"], "selector"),
            mapper=check_callable(values["mapper"], "mapper"),
            concurrency_limit=limit,
            buffer_size=check_int(values["buffer_size"], "buffer_size", minimum=1),
            max_size=check_int(values["max_size"], "max_size", minimum=1),
            checkpoint_threshold=check_int(
                values["checkpoint_threshold"], "checkpoint_threshold", minimum=1
            ),
            checkpoint_after=checkpoint_after,
            partition_by=check_callable(values["partition_by"], "partition_by"),
            transient=transient,
            message_timeout=timeout,
            max_retry_count=check_int(values["max_retry_count"], "max_retry_count", minimum=0),
            strategy=strategy,
            retry_interval=retry_interval,
        )
