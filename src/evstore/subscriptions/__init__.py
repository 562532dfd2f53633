"""Transient and persistent subscriptions: one engine for every backend.

See :mod:`evstore.subscriptions._engine` for how a persistent subscription reads, delivers,
retries, parks and checkpoints, and docs/design.md for why it works that way.
"""

from evstore.subscriptions._handles import (
    Subscription,
    SubscriptionInfo,
    SubscriptionRequest,
    TransientSubscription,
)

__all__ = ["Subscription", "SubscriptionInfo", "SubscriptionRequest", "TransientSubscription"]
