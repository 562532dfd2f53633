"""``ServerFeatures.GetSupportedMethods``: which methods this server implements.

Official KurrentDB clients call it once per channel and choose between alternatives from
the answer (BatchAppend or Append, persistent subscriptions to ``$all`` or not, ...).
The list is built from the methods actually registered (see ``app.py``), lower-cased as
KurrentDB reports them, with the feature flags KurrentDB attaches to some of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc.aio

from evstore.server._generated import serverfeatures_pb2, serverfeatures_pb2_grpc, shared_pb2

__all__ = ["SERVER_VERSION", "ServerFeaturesServicer", "features_of"]

SERVER_VERSION = "25.0.0"
"""The KurrentDB release whose client protocol this server implements (v1 services).

Clients compare this with KurrentDB release numbers to decide what a server supports, so
it is a KurrentDB version, not evstore's own.
"""

_PERSISTENT = "event_store.client.persistent_subscriptions.persistentsubscriptions"

# KurrentDB's extra feature flags, by lower-cased (service, method).
_FEATURES: dict[tuple[str, str], tuple[str, ...]] = {
    ("event_store.client.streams.streams", "read"): ("position", "events"),
    ("event_store.client.streams.streams", "batchappend"): ("deadline_duration",),
    ("event_store.client.projections.projections", "create"): ("track_emitted_streams",),
}


def features_of(service: str, method: str) -> tuple[str, ...]:
    """The feature flags of a method, given its lower-cased service and method names."""
    if service == _PERSISTENT:
        # Every persistent-subscription method works on stream and on $all groups.
        return ("stream", "all")
    return _FEATURES.get((service, method), ())


class ServerFeaturesServicer(serverfeatures_pb2_grpc.ServerFeaturesServicer):
    """The ServerFeatures service.

    Args:
        methods: ``(service full name, method name)`` of every method the server serves,
            this service's own included; read at each call, so it may be filled in after
            construction.
    """

    def __init__(self, methods: Iterable[tuple[str, str]]) -> None:
        self._methods = methods

    def supported_methods(self) -> serverfeatures_pb2.SupportedMethods:
        """The answer of GetSupportedMethods."""
        answer = serverfeatures_pb2.SupportedMethods(event_store_server_version=SERVER_VERSION)
        for service, method in sorted({(s.lower(), m.lower()) for s, m in self._methods}):
            answer.methods.add(
                method_name=method, service_name=service, features=features_of(service, method)
            )
        return answer

    async def GetSupportedMethods(
        self, request: shared_pb2.Empty, context: grpc.aio.ServicerContext[Any, Any]
    ) -> serverfeatures_pb2.SupportedMethods:
        """Every registered method, with its features."""
        return self.supported_methods()
