"""What every service of one server shares: the store, the metrics, who the node is.

The servicers take a :class:`ServerState` (``StreamsServicer(state)``, ...). It is created
by :class:`evstore.server.app.EvstoreServer` once the store is open.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from evstore import AsyncEventStore
from evstore.server.metrics import ServerMetrics

__all__ = ["ServerState", "ShutdownHook"]

_log = logging.getLogger("evstore.server")

ShutdownHook = Callable[[], Awaitable[None]]
"""An async callable run at shutdown, after the last call ended and before the store closes."""


@dataclass(eq=False)
class ServerState:
    """The state of one running server.

    Attributes:
        store: the one store every call works on (open while the server serves).
        metrics: the server's Prometheus metrics.
        advertise_host: the host clients are told to connect to (Gossip.Read).
        advertise_port: the port clients are told to connect to.
        instance_id: this node's id for the run (Gossip.Read); new at each start.
        started_at: when the server started (seconds since the epoch).
        ready: True once the store is open and gRPC serves; False again when stopping.
        stopping: set when shutdown begins. Long-lived calls (catch-up and persistent
            subscriptions) must end promptly when it is set, so that shutdown does not
            wait for them until the grace period runs out; short calls just finish.
    """

    store: AsyncEventStore
    metrics: ServerMetrics
    advertise_host: str
    advertise_port: int
    instance_id: uuid.UUID = field(default_factory=uuid.uuid4)
    started_at: float = field(default_factory=time.time)
    ready: bool = False
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _shutdown_hooks: list[ShutdownHook] = field(default_factory=list, repr=False)

    def add_shutdown_hook(self, hook: ShutdownHook) -> None:
        """Run ``hook()`` at shutdown: after gRPC stopped, before the store closes.

        Hooks run in reverse order of registration; one that fails is logged and does not
        keep the others (or the store's close) from running.
        """
        self._shutdown_hooks.append(hook)

    async def run_shutdown_hooks(self) -> None:
        """Run (and forget) the registered hooks; called once by the server."""
        hooks, self._shutdown_hooks = self._shutdown_hooks, []
        for hook in reversed(hooks):
            try:
                await hook()
            except Exception:
                _log.exception("shutdown hook %r failed", hook)
