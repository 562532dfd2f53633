"""The server's Prometheus metrics, one registry per server (exposed at ``/metrics``).

Each :class:`ServerMetrics` has its own ``CollectorRegistry`` rather than using
prometheus-client's process-wide default: several servers in one process (tests,
benchmarks) must not share or collide on counters.

The services update them (``state.metrics.appends.inc()``, ...); the names are documented
on the attributes below and in docs (the ``evstore_`` prefix, ``_total`` for counters).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE", "ServerMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The Content-Type of :meth:`ServerMetrics.render` (Prometheus text format)."""


class ServerMetrics:
    """Counters and gauges of one server.

    Attributes:
        registry: the registry holding them all.
        appends: successful append operations (an Append call, or one BatchAppend batch);
            ``evstore_appends_total``.
        events_appended: events those appends wrote; ``evstore_events_appended_total``.
        reads: Read calls that are not subscriptions (a stream or ``$all``);
            ``evstore_reads_total``.
        events_read: events sent by reads and by catch-up subscriptions;
            ``evstore_events_read_total``.
        catch_up_subscriptions: catch-up subscriptions (Streams.Read with ``subscription``)
            now open; ``evstore_catch_up_subscriptions``.
        persistent_subscriptions: persistent-subscription consumers (PersistentSubscriptions
            .Read calls) now connected; ``evstore_persistent_subscriptions``.
        persistent_subscription_lag: per group (labels ``stream``, ``group``), how many
            events of its source it has not yet processed (last known event minus last
            checkpointed one); ``evstore_persistent_subscription_lag``. Set by the
            persistent-subscription service; remove a group's series with
            ``persistent_subscription_lag.remove(stream, group)`` when it is deleted.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.appends = Counter(
            "evstore_appends",
            "Successful append operations (an Append call or one BatchAppend batch).",
            registry=registry,
        )
        self.events_appended = Counter(
            "evstore_events_appended",
            "Events written by successful appends.",
            registry=registry,
        )
        self.reads = Counter(
            "evstore_reads",
            "Read calls of a stream or of $all (subscriptions not included).",
            registry=registry,
        )
        self.events_read = Counter(
            "evstore_events_read",
            "Events sent to clients by reads and catch-up subscriptions.",
            registry=registry,
        )
        self.catch_up_subscriptions = Gauge(
            "evstore_catch_up_subscriptions",
            "Catch-up subscriptions now open.",
            registry=registry,
        )
        self.persistent_subscriptions = Gauge(
            "evstore_persistent_subscriptions",
            "Persistent-subscription consumers now connected.",
            registry=registry,
        )
        self.persistent_subscription_lag = Gauge(
            "evstore_persistent_subscription_lag",
            "Events of a subscription group's source not yet processed by the group.",
            ["stream", "group"],
            registry=registry,
        )

    def render(self) -> bytes:
        """The current values in Prometheus text exposition format."""
        return generate_latest(self.registry)
