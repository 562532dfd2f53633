"""Blocking subscription handles for :class:`evstore.EventStore` (the sync twin).

Each wraps an async handle living on the store's private event loop; every call blocks
until the loop thread has done it. Iterating yields batches, as the async handles do.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterator, Sequence
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from evstore._types import RecordedEvent
from evstore.subscriptions._handles import Subscription, TransientSubscription
from evstore.subscriptions._options import NackAction

__all__ = ["SyncSubscription", "SyncTransientSubscription"]

T = TypeVar("T")


class Call(Protocol):
    """How a handle runs a coroutine on the store's loop thread (``EventStore._call``)."""

    def __call__(self, coro: Coroutine[Any, Any, T], *, cancel_on_interrupt: bool = False) -> T: ...


class _SyncReceiving:
    _handle: Subscription | TransientSubscription
    _call: Call

    def receive(self, timeout: float | None = None) -> list[Any] | None:
        """The next batch, blocking up to ``timeout`` seconds; ``None`` once closed.

        Raises:
            EventStoreTimeoutError: nothing arrived in time.
        """
        # Ctrl-C while waiting cancels the wait on the loop, so no batch is taken unseen.
        batch: list[Any] | None = self._call(
            self._handle.receive(timeout), cancel_on_interrupt=True
        )
        return batch

    def __iter__(self) -> Iterator[list[Any]]:
        return self

    def __next__(self) -> list[Any]:
        batch = self.receive()
        if batch is None:
            raise StopIteration
        return batch

    def close(self) -> None:
        """End the subscription for this subscriber (see the async handle). Idempotent."""
        self._call(self._handle.close())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SyncTransientSubscription(_SyncReceiving):
    """Blocking twin of :class:`evstore.TransientSubscription`."""

    def __init__(self, handle: TransientSubscription, call: Call) -> None:
        self._handle = handle
        self._call = call
        self.stream_id = handle.stream_id


class SyncSubscription(_SyncReceiving):
    """Blocking twin of :class:`evstore.Subscription`: iterate for batches, ``ack`` and
    ``nack`` block until the engine took them."""

    _handle: Subscription

    def __init__(self, handle: Subscription, call: Call) -> None:
        self._handle = handle
        self._call = call
        self.stream_id = handle.stream_id
        self.name = handle.name

    @property
    def subscribed(self) -> bool:
        """See :attr:`evstore.Subscription.subscribed`."""
        return self._handle.subscribed

    @property
    def in_flight(self) -> int:
        """See :attr:`evstore.Subscription.in_flight`."""
        return self._handle.in_flight

    @property
    def checkpoint(self) -> int:
        """See :attr:`evstore.Subscription.checkpoint`."""
        return self._handle.checkpoint

    def wait_subscribed(self, timeout: float | None = None) -> None:
        """See :meth:`evstore.Subscription.wait_subscribed`."""
        self._call(self._handle.wait_subscribed(timeout))

    def retry_count(self, event: RecordedEvent | int) -> int:
        """See :meth:`evstore.Subscription.retry_count`."""
        return self._handle.retry_count(event)

    def ack(self, events: RecordedEvent | Sequence[RecordedEvent | int] | int) -> None:
        """See :meth:`evstore.Subscription.ack`."""
        self._call(self._handle.ack(events))

    def nack(
        self,
        events: RecordedEvent | Sequence[RecordedEvent | int] | int,
        action: NackAction = "retry",
    ) -> None:
        """See :meth:`evstore.Subscription.nack`."""
        self._call(self._handle.nack(events, action))
