"""The events every system writes: one ~100-byte JSON object, the same for all."""

from __future__ import annotations

import uuid

import orjson

__all__ = ["EVENT_TYPE", "PAYLOAD", "PAYLOAD_BYTES", "new_stream_id"]

EVENT_TYPE = "OrderPlaced"

PAYLOAD: dict[str, object] = {
    "order_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
    "customer": "c-1042",
    "total": 12345,
    "currency": "EUR",
}
"""What evstore is given (it serialises it with orjson, as it would any application's dict)."""

PAYLOAD_BYTES = orjson.dumps(PAYLOAD)
"""What the raw baselines and eventsourcing's recorder store: the same JSON, pre-encoded
(their APIs take bytes; the serialisation cost, about a microsecond, is evstore's alone)."""


def new_stream_id() -> str:
    """A fresh stream id: a UUID string (eventsourcing's recorders key streams by UUID)."""
    return str(uuid.uuid4())
