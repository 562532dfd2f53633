"""What subscribers hold: subscription handles and the awaitable request that makes them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from evstore._types import RecordedEvent
from evstore.errors import InvalidArgumentError, InvalidArgumentTypeError
from evstore.subscriptions._engine import Consumer, PersistentEngine
from evstore.subscriptions._options import NACK_ACTIONS, NackAction
from evstore.subscriptions._transient import TransientFeed

__all__ = [
    "Subscription",
    "SubscriptionInfo",
    "SubscriptionRequest",
    "TransientSubscription",
    "event_numbers",
]

H = TypeVar("H", "Subscription", "TransientSubscription")


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    """A stored persistent subscription, as ``list_subscriptions`` reports it.

    Attributes:
        stream_id: the subscribed stream (``"$all"`` for all streams).
        subscription_name: its name.
        checkpoint: the event number up to which every event was handled (0: none).
        created_at: when it was first subscribed (UTC).
        parked_count: how many of its events are parked.
    """

    stream_id: str
    subscription_name: str
    checkpoint: int
    created_at: datetime
    parked_count: int


def _number(item: object, argument: str) -> int:
    if isinstance(item, RecordedEvent):
        return item.event_number
    if isinstance(item, int) and not isinstance(item, bool):
        return item
    raise InvalidArgumentTypeError(
        f"{argument} must be a RecordedEvent, a list of them or an event number, "
        f"got {type(item).__name__}",
        argument=argument,
    )


def event_numbers(value: object, argument: str) -> list[int]:
    """The event numbers named by an event, a non-empty list of events, or a number."""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if not value:
            raise InvalidArgumentError(f"{argument} must not be an empty list", argument=argument)
        return [_number(item, argument) for item in value]
    return [_number(value, argument)]


class SubscriptionRequest(Generic[H]):
    """A subscription being made: ``await`` it for the handle, or use it directly in
    ``async with`` (which awaits it and closes the handle on exit)."""

    __slots__ = ("_handle", "_make")

    def __init__(self, make: Callable[[], Awaitable[H]]) -> None:
        self._make: Callable[[], Awaitable[H]] = make
        self._handle: H | None = None

    async def _get(self) -> H:
        if self._handle is None:
            self._handle = await self._make()
        return self._handle

    def __await__(self) -> Generator[Any, None, H]:
        return self._get().__await__()

    async def __aenter__(self) -> H:
        return await self._get()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            await self._handle.close()


class _Receiving:
    """Iteration shared by both handles: batches from an inbox."""

    _inbox: Any

    async def receive(self, timeout: float | None = None) -> list[Any] | None:
        """The next batch, waiting up to ``timeout`` seconds (``None``: no limit).

        Returns:
            A non-empty list of events (or mapped values), or ``None`` once the
            subscription is closed.

        Raises:
            EventStoreTimeoutError: no batch arrived in time (nothing is lost).
            Exception: the error that ended the subscription (a selector or mapper that
                raised, the subscribed stream deleted, ...).
        """
        result: list[Any] | None = await self._inbox.get(timeout)
        return result

    def __aiter__(self) -> AsyncIterator[list[Any]]:
        return self

    async def __anext__(self) -> list[Any]:
        batch = await self.receive()
        if batch is None:
            raise StopAsyncIteration
        return batch


class TransientSubscription(_Receiving):
    """Events appended after subscribing, one batch per append; no acks, no checkpoint.

    Use it as ``async with`` and ``async for batch in sub``; :meth:`close` ends it.
    """

    def __init__(self, feed: TransientFeed) -> None:
        self._feed = feed
        self._inbox = feed.inbox
        self.stream_id = feed.stream_id

    async def close(self) -> None:
        """Stop the subscription; iteration ends. Idempotent."""
        await self._feed.stop()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class Subscription(_Receiving):
    """One subscriber of a persistent subscription.

    Batches arrive in ascending event-number order, at most ``buffer_size`` events each,
    and the next ones only as earlier events are acknowledged. Use it as ``async with``
    (leaving flushes the checkpoint and releases the subscriber) and ``async for``.

    Attributes:
        stream_id: the subscribed stream (``"$all"`` for all streams).
        name: the subscription's name.
    """

    def __init__(self, engine: PersistentEngine, consumer: Consumer) -> None:
        self._engine = engine
        self._consumer = consumer
        self._inbox = consumer.inbox
        self.stream_id = engine.stream_id
        self.name = engine.name

    @property
    def subscribed(self) -> bool:
        """True while this subscription owns its name and delivers; False while it waits
        as a standby (another process owns it) or after it ended."""
        return self._engine.active and not self._inbox.closed

    async def wait_subscribed(self, timeout: float | None = None) -> None:
        """Wait until :attr:`subscribed`.

        Raises:
            EventStoreTimeoutError: not within ``timeout`` seconds.
        """
        await self._engine.wait_active(timeout)

    @property
    def in_flight(self) -> int:
        """How many events this subscriber holds unacknowledged."""
        return len(self._consumer.in_flight)

    @property
    def checkpoint(self) -> int:
        """The event number up to which every event is handled (stored, or about to be)."""
        return self._engine.last_ack

    def retry_count(self, event: RecordedEvent | int) -> int:
        """How many times ``event`` (in flight to this subscriber) was delivered again."""
        [number] = event_numbers(event, "event")
        return self._engine.retry_count(self._consumer, number)

    async def ack(self, events: RecordedEvent | Sequence[RecordedEvent | int] | int) -> None:
        """Acknowledge an event and every earlier one in flight to this subscriber.

        Args:
            events: a RecordedEvent, a non-empty list of them (the last one counts), or
                an event number (use it when a ``mapper`` changed what was delivered).

        Raises:
            InvalidArgumentError: the event was never delivered by this subscription.
        """
        if isinstance(events, Sequence) and not isinstance(events, (str, bytes)) and events:
            events = events[-1]  # the last one counts: no need to look at the others
        [number] = event_numbers(events, "ack")
        await self._engine.ack(self._consumer, number)

    async def nack(
        self,
        events: RecordedEvent | Sequence[RecordedEvent | int] | int,
        action: NackAction = "retry",
    ) -> None:
        """Refuse events in flight to this subscriber (each one listed).

        Args:
            events: a RecordedEvent, a non-empty list of them, or an event number.
            action: ``"retry"`` (deliver again; parked once retried ``max_retry_count``
                times), ``"park"`` (store as parked; handled), ``"skip"`` (handled, never
                delivered again) or ``"stop"`` (this subscriber stops; what it held goes
                back to the queue).
        """
        if action not in NACK_ACTIONS:
            raise InvalidArgumentError(
                f"action must be one of {', '.join(NACK_ACTIONS)}, got {action!r}",
                argument="action",
            )
        await self._engine.nack(self._consumer, event_numbers(events, "events"), action)

    async def close(self) -> None:
        """Flush the checkpoint and release this subscriber; events it had not acked go
        to the other subscribers or come again on the next subscribe. Idempotent."""
        await self._engine.disconnect(self._consumer)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
