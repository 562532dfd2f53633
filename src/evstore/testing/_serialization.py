"""Payload serialisation: JSON by default, bytes untouched, custom serializers, typed events.

Reference: §5.1 (serializer behaviour) and API.md (``serializer=``, ``JsonSerializer``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

import pytest

from evstore import (
    ANY_VERSION,
    AsyncEventStore,
    EventData,
    InvalidArgumentError,
    JsonSerializer,
    SnapshotData,
)
from evstore.testing._support import StoreFactory, SuiteBase, assert_usable, fingerprint


class LiteralSerializer:
    """A small non-JSON serializer: Python literals via ``repr`` and ``ast.literal_eval``.

    It keeps tuples, sets and complex numbers, which JSON cannot, so a round trip proves the
    store used it; it records the type names it was asked to decode.
    """

    content_type = "application/x-python-literal"

    def __init__(self) -> None:
        self.decoded_types: list[str | None] = []

    def serialize(self, value: Any) -> bytes:
        text = repr(value)
        try:
            if ast.literal_eval(text) != value:
                raise ValueError(f"{type(value).__name__} does not round-trip")
        except (ValueError, SyntaxError) as exc:
            raise ValueError(f"not a Python literal: {text[:40]}") from exc
        return text.encode("utf-8")

    def deserialize(self, data: bytes, type_name: str | None = None) -> Any:
        self.decoded_types.append(type_name)
        return ast.literal_eval(data.decode("utf-8"))


@dataclass(frozen=True)
class OrderPlaced:
    """A typed event payload."""

    order_id: str
    total: int
    lines: list[str]


JSON_VALUES: list[Any] = [
    {"nested": {"list": [1, 2.5, "three", None, True, False]}, "empty": {}},
    [1, "two", {"three": 3}],
    "just a string",
    12345678901234,
    -0.5,
    True,
    None,
]


class SerializationTests(SuiteBase):
    """What goes in comes out, through the store's serializer."""

    async def test_serialization_json_round_trips_by_default(self, store: AsyncEventStore) -> None:
        events = [EventData("Json", value, {"i": i}) for i, value in enumerate(JSON_VALUES)]
        await store.append_to_stream("stream-1", 0, events)

        read = await store.read_stream_forward("stream-1")

        assert [e.data for e in read] == JSON_VALUES
        assert [e.metadata for e in read] == [{"i": i} for i in range(len(JSON_VALUES))]
        assert isinstance(store.serializer, JsonSerializer)

    async def test_serialization_bytes_pass_through_untouched(self, store: AsyncEventStore) -> None:
        raw = bytes(range(256))
        events = [
            EventData("Raw", raw, b"\xff\x00meta"),
            EventData("Mixed", {"json": True}, b"\x00"),
            EventData("Mixed", b"", {"json": "metadata"}),
            EventData("Array", bytearray(b"\x01\x02"), memoryview(b"\x03")),
            EventData("JsonLooking", b'{"a": 1}'),
        ]
        await store.append_to_stream("stream-1", 0, events)

        read = await store.read_stream_forward("stream-1")
        snapshot = SnapshotData("raw", 1, "Raw", raw, b"\xfe")
        await store.record_snapshot(snapshot)

        assert [(e.data, e.metadata) for e in read] == [
            (raw, b"\xff\x00meta"),
            ({"json": True}, b"\x00"),
            (b"", {"json": "metadata"}),
            (b"\x01\x02", b"\x03"),
            (b'{"a": 1}', None),
        ]
        assert all(type(e.data) is bytes for e in (read[0], read[2], read[3], read[4]))
        from_snapshot = await store.read_snapshot("raw")
        assert (from_snapshot.data, from_snapshot.metadata) == (raw, b"\xfe")

    async def test_serialization_custom_serializer_round_trips(
        self, store_factory: StoreFactory
    ) -> None:
        serializer = LiteralSerializer()
        store = await store_factory(serializer=serializer)
        data = {"tuple": (1, 2), "set": {3, 4}, "complex": 1 + 2j, "bytes_inside": b"x"}

        await store.append_to_stream(
            "stream-1", 0, [EventData("Literal", data, {"meta": (5,)}), EventData("Raw", b"r")]
        )
        await store.record_snapshot(SnapshotData("snap", 1, "LiteralSnap", data, ("m",)))

        first, second = await store.read_stream_forward("stream-1")
        assert (first.data, first.metadata, second.data) == (data, {"meta": (5,)}, b"r")
        snapshot = await store.read_snapshot("snap")
        assert (snapshot.data, snapshot.metadata) == (data, ("m",))
        # Event and snapshot data are decoded with their type, metadata without one.
        assert serializer.decoded_types == ["Literal", None, "LiteralSnap", None]
        assert store.serializer is serializer

    async def test_serialization_custom_serializer_refusal_writes_nothing(
        self, store_factory: StoreFactory
    ) -> None:
        store = await store_factory(serializer=LiteralSerializer())
        before = await fingerprint(store)

        with pytest.raises(InvalidArgumentError) as raised:
            await store.append_to_stream(
                "stream-1", ANY_VERSION, [EventData("Ok", 1), EventData("Bad", object())]
            )

        assert raised.value.argument == "events[1].data"
        assert "events[1].data" in str(raised.value)
        assert await fingerprint(store) == before
        await assert_usable(store)

    async def test_serialization_json_refusal_names_the_event(self, store: AsyncEventStore) -> None:
        before = await fingerprint(store)

        with pytest.raises(InvalidArgumentError) as raised:
            await store.append_to_stream(
                "stream-1",
                ANY_VERSION,
                [EventData("Ok", 1), EventData("Ok", 2), EventData("Bad", {"x": object()})],
            )

        assert raised.value.argument == "events[2].data"
        assert isinstance(raised.value, ValueError)
        assert await fingerprint(store) == before
        await assert_usable(store)

    async def test_serialization_registered_dataclass_reads_back_typed(
        self, store_factory: StoreFactory
    ) -> None:
        store = await store_factory(serializer=JsonSerializer(types={"OrderPlaced": OrderPlaced}))
        placed = OrderPlaced("o-1", 99, ["book", "pen"])

        await store.append_to_stream(
            "order-1",
            0,
            [EventData("OrderPlaced", placed, {"by": "me"}), EventData("Untyped", {"a": 1})],
        )
        await store.record_snapshot(SnapshotData("order-1", 1, "OrderPlaced", placed))

        first, second = await store.read_stream_forward("order-1")
        assert first.data == placed
        assert isinstance(first.data, OrderPlaced)
        assert first.metadata == {"by": "me"}
        assert second.data == {"a": 1}
        assert (await store.read_snapshot("order-1")).data == placed

    async def test_serialization_registered_pydantic_model_reads_back_typed(
        self, store_factory: StoreFactory
    ) -> None:
        pydantic = pytest.importorskip("pydantic")

        class OrderPaid(pydantic.BaseModel):  # type: ignore[name-defined,misc]
            order_id: str
            amount: float
            tags: list[str] = []

        serializer = JsonSerializer()
        serializer.register("OrderPaid", OrderPaid)
        store = await store_factory(serializer=serializer)
        paid = OrderPaid(order_id="o-1", amount=12.5, tags=["card"])

        await store.append_to_stream("order-1", 0, [EventData("OrderPaid", paid)])

        [event] = await store.read_stream_forward("order-1")
        assert isinstance(event.data, OrderPaid)
        assert event.data == paid
        # A store without the registration reads the same event as plain JSON.
        plain = await store_factory(shared=store)
        [untyped] = await plain.read_stream_forward("order-1")
        assert untyped.data == {"order_id": "o-1", "amount": 12.5, "tags": ["card"]}
