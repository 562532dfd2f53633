"""Turning event payloads into bytes and back.

A store has one :class:`Serializer`. ``bytes`` payloads never reach it: they are stored as
given and read back as ``bytes``. The default, :class:`JsonSerializer`, writes JSON and can map
event types to classes (dataclasses, pydantic models, or any class built from keyword
arguments), so ``data`` comes back as an instance of the registered class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import orjson

__all__ = ["JsonSerializer", "SerializationError", "Serializer"]


class SerializationError(ValueError):
    """A payload could not be encoded or decoded."""


@runtime_checkable
class Serializer(Protocol):
    """What a store needs from a serializer.

    ``deserialize`` gets the event type (for event data and snapshot data) or ``None`` (for
    metadata), so a serializer can rebuild typed objects.
    """

    content_type: str

    def serialize(self, value: Any) -> bytes:
        """Encode ``value``; raise ``TypeError`` or ``ValueError`` when it cannot."""
        ...

    def deserialize(self, data: bytes, type_name: str | None = None) -> Any:
        """Decode bytes written by :meth:`serialize`."""
        ...


def _to_jsonable(value: Any) -> Any:
    # orjson handles dataclasses, UUIDs and datetimes itself; pydantic models and other
    # objects offering a dict form come through here.
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        return model_dump(mode="json")
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def _builder_for(cls: type[Any]) -> Callable[[Any], Any]:
    """How to rebuild ``cls`` from decoded JSON: pydantic, ``from_dict``, or keywords."""
    for name in ("model_validate", "from_dict"):
        factory: Callable[[Any], Any] | None = getattr(cls, name, None)
        if callable(factory):
            return factory

    def build(obj: Any) -> Any:
        return cls(**obj) if isinstance(obj, dict) else cls(obj)

    return build


class JsonSerializer:
    """JSON via orjson, with an optional event-type → class registry.

    Args:
        types: event type names mapped to the classes their data should be read back as.
    """

    content_type = "application/json"
    _OPTIONS = orjson.OPT_NON_STR_KEYS

    def __init__(self, types: Mapping[str, type[Any]] | None = None) -> None:
        self._builders: dict[str, Callable[[Any], Any]] = {}
        for name, cls in (types or {}).items():
            self.register(name, cls)

    def register(self, type_name: str, cls: type[Any]) -> None:
        """Read data of events (and snapshots) of ``type_name`` back as ``cls``."""
        if not isinstance(type_name, str) or not type_name:
            raise ValueError("type_name must be a non-empty string")
        self._builders[type_name] = _builder_for(cls)

    @property
    def decodes_plain_json(self) -> bool:
        """True when no event type is registered: every payload reads back as plain JSON
        (the store then decodes with orjson directly, skipping the registry lookup)."""
        return not self._builders

    def serialize(self, value: Any) -> bytes:
        try:
            return orjson.dumps(value, default=_to_jsonable, option=self._OPTIONS)
        except orjson.JSONEncodeError as exc:
            raise TypeError(str(exc)) from exc

    def deserialize(self, data: bytes, type_name: str | None = None) -> Any:
        obj = orjson.loads(data)
        if type_name is not None:
            builder = self._builders.get(type_name)
            if builder is not None:
                return builder(obj)
        return obj
