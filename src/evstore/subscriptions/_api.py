"""The subscription methods of :class:`evstore.AsyncEventStore` (a mixin of the façade).

They check arguments and hand over to the store's :class:`SubscriptionRegistry`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Unpack

from evstore._checks import check_text
from evstore._types import ALL_STREAM, RecordedEvent
from evstore._validation import check_stream_id
from evstore.errors import InvalidArgumentTypeError
from evstore.subscriptions._handles import (
    Subscription,
    SubscriptionInfo,
    SubscriptionRequest,
    TransientSubscription,
)
from evstore.subscriptions._options import (
    PersistentOptions,
    SubscriptionOptions,
    check_callable,
)
from evstore.subscriptions._registry import SubscriptionRegistry

__all__ = ["SubscriptionMethods"]

MAX_SUBSCRIPTION_NAME_LENGTH = 1024


def _name(value: object, argument: str) -> str:
    return check_text(value, argument, max_length=MAX_SUBSCRIPTION_NAME_LENGTH)


class SubscriptionMethods:
    """Transient and persistent subscriptions, parked events (see API.md)."""

    _subscriptions: SubscriptionRegistry

    def subscribe(
        self,
        stream_id: str,
        *,
        selector: Callable[[RecordedEvent], Any] | None = None,
        mapper: Callable[[RecordedEvent], Any] | None = None,
    ) -> SubscriptionRequest[TransientSubscription]:
        """Follow the events appended to a stream (or ``"$all"``) from now on.

        ``await`` the result (or use it in ``async with``) for a
        :class:`TransientSubscription`: an async iterator of batches, one per append, with
        no acknowledgements and no checkpoint.

        Args:
            stream_id: the stream, or ``"$all"`` for every stream.
            selector: keeps an event when it returns true; batches it empties are skipped.
            mapper: turns each delivered event into what the subscriber receives.
        """
        stream_id = check_stream_id(stream_id)
        check_callable(selector, "selector")
        check_callable(mapper, "mapper")
        registry = self._subscriptions
        return SubscriptionRequest(
            lambda: registry.subscribe_transient(stream_id, selector, mapper)
        )

    def subscribe_to_stream(
        self, stream_id: str, subscription_name: str, **options: Unpack[PersistentOptions]
    ) -> SubscriptionRequest[Subscription]:
        """Subscribe to a named persistent subscription of a stream (``"$all"``: every
        stream), catching up from its checkpoint and then following live.

        ``await`` the result (or use it in ``async with``) for a :class:`Subscription`;
        the subscriber is registered when it returns. Events come in batches of at most
        ``buffer_size``; acknowledge them with ``await sub.ack(...)``.

        Args:
            stream_id: the stream, or ``"$all"``.
            subscription_name: the subscription's name; its checkpoint is stored under
                (stream_id, name) and survives restarts.
            start_from: where a new subscription starts: ``"origin"`` (default),
                ``"current"`` (after the events stored now) or an event number N
                (deliver events after N). An existing subscription resumes after its
                checkpoint instead.
            selector: events for which it returns false are not delivered (they count as
                handled).
            mapper: turns each delivered event into what the subscriber receives (then
                acknowledge by event number).
            concurrency_limit: how many subscribers may share the subscription in this
                store (default: one, and a second subscribe raises
                ``SubscriptionAlreadyExistsError``).
            buffer_size: events in flight (delivered, not acknowledged) per subscriber
                (default 1).
            max_size: events held in memory by the subscription, also the read size
                (default 1000).
            checkpoint_threshold: store the checkpoint after this many handled events
                (default 1).
            checkpoint_after: or after this many seconds without reaching the threshold
                (default 0: off).
            partition_by: events with the same key go to one subscriber at a time, in
                order.
            transient: no stored checkpoint and no ownership: start from ``start_from``
                every time (default False).
            message_timeout: seconds before an unacknowledged event is delivered again
                (default ``None``: never).
            max_retry_count: an event retried this many times is parked at its next retry
                (default 10).
            strategy: ``"round_robin"`` (default), ``"dispatch_to_single"``, ``"pinned"``
                (by stream) or ``"pinned_by_correlation"``.
            retry_interval: seconds between attempts to take the subscription over while
                another process owns it (default 1).
            subscriber: an identity for this subscriber; subscribing the same identity
                twice raises ``AlreadySubscribedError`` (default: a new one each call).

        Raises:
            SubscriptionAlreadyExistsError, TooManySubscribersError, AlreadySubscribedError,
            StreamDeletedError (``start_from="current"`` on a deleted stream),
            InvalidArgumentError: a bad or unknown option, named in the message.
        """
        stream_id = check_stream_id(stream_id)
        name = _name(subscription_name, "subscription_name")
        checked = SubscriptionOptions.checked(options)
        subscriber = options.get("subscriber")
        if subscriber is not None and not isinstance(subscriber, Hashable):
            raise InvalidArgumentTypeError("subscriber must be hashable", argument="subscriber")
        registry = self._subscriptions
        return SubscriptionRequest(lambda: registry.subscribe(stream_id, name, checked, subscriber))

    def subscribe_to_all_streams(
        self, subscription_name: str, **options: Unpack[PersistentOptions]
    ) -> SubscriptionRequest[Subscription]:
        """:meth:`subscribe_to_stream` on ``"$all"``: event numbers are global positions."""
        return self.subscribe_to_stream(ALL_STREAM, subscription_name, **options)

    async def unsubscribe_from_stream(self, stream_id: str, name: str) -> None:
        """Stop the named subscription in this store: every subscriber's iteration ends
        and the checkpoint is stored; the subscription itself is kept. No-op when it is
        not running here."""
        stream_id = check_stream_id(stream_id)
        await self._subscriptions.stop(stream_id, _name(name, "name"))

    async def unsubscribe_from_all_streams(self, name: str) -> None:
        """:meth:`unsubscribe_from_stream` for an all-streams subscription."""
        await self.unsubscribe_from_stream(ALL_STREAM, name)

    async def delete_subscription(self, stream_id: str, name: str) -> None:
        """Stop the subscription if it runs here, then forget its checkpoint and parked
        events; subscribing again starts afresh from ``start_from``."""
        stream_id = check_stream_id(stream_id)
        await self._subscriptions.delete(stream_id, _name(name, "name"))

    async def delete_all_streams_subscription(self, name: str) -> None:
        """:meth:`delete_subscription` for an all-streams subscription."""
        await self.delete_subscription(ALL_STREAM, name)

    async def parked_events(self, stream_id: str, name: str) -> list[RecordedEvent]:
        """The subscription's parked events, oldest parked first (``"$all"`` for an
        all-streams subscription), numbered as they were delivered."""
        stream_id = check_stream_id(stream_id)
        return await self._subscriptions.parked_events(stream_id, _name(name, "name"))

    async def replay_parked(self, stream_id: str, name: str) -> None:
        """Deliver the subscription's parked events again, ahead of new events (at once
        when it runs in this store; otherwise when its owner next looks, within a few
        poll intervals). A replayed event leaves the parked list once handled."""
        stream_id = check_stream_id(stream_id)
        await self._subscriptions.replay_parked(stream_id, _name(name, "name"))

    async def list_subscriptions(self) -> list[SubscriptionInfo]:
        """Every stored persistent subscription with its checkpoint and parked count."""
        return await self._subscriptions.list()
