"""``Gossip.Read``: the cluster as a client sees it, which for evstore is this one node.

Clients that discover (several seeds, or a ``+discover`` URL) call it and connect to the
member they prefer; a single alive ``Leader`` at the advertised endpoint sends every
preference (leader, follower, random) here.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import grpc.aio

from evstore.server._generated import gossip_pb2, gossip_pb2_grpc, shared_pb2
from evstore.server.state import ServerState

__all__ = ["GossipServicer", "structured_uuid"]

# KurrentDB times are .NET ticks (100 ns) counted from the Unix epoch.
_TICKS_PER_SECOND = 10_000_000


def structured_uuid(value: uuid.UUID) -> shared_pb2.UUID:
    """``value`` in the protocol's structured form: its 16 bytes as two signed int64."""
    raw = value.bytes
    message = shared_pb2.UUID()
    message.structured.most_significant_bits = int.from_bytes(raw[:8], "big", signed=True)
    message.structured.least_significant_bits = int.from_bytes(raw[8:], "big", signed=True)
    return message


class GossipServicer(gossip_pb2_grpc.GossipServicer):
    """The Gossip service of one server."""

    def __init__(self, state: ServerState) -> None:
        self._state = state

    async def Read(
        self, request: shared_pb2.Empty, context: grpc.aio.ServicerContext[Any, Any]
    ) -> gossip_pb2.ClusterInfo:
        """This node as the one alive Leader, at the endpoint clients should use."""
        state = self._state
        member = gossip_pb2.MemberInfo(
            time_stamp=int(time.time() * _TICKS_PER_SECOND),
            state=gossip_pb2.MemberInfo.Leader,
            is_alive=True,
        )
        # KurrentDB sends the instance id in the structured form.
        member.instance_id.CopyFrom(structured_uuid(state.instance_id))
        member.http_end_point.address = state.advertise_host
        member.http_end_point.port = state.advertise_port
        return gossip_pb2.ClusterInfo(members=[member])
